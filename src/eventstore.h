/*-------------------------------------------------------------------------
 *
 * eventstore.h
 *	  Constants shared by the eventstore extension's source files: name
 *	  limits, SQLSTATEs and the column numbers of eventstore.events.
 *	  Each module's functions are declared in its own header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include "postgres.h"

/* Limits on names (bytes). */
#define ES_MAX_STREAM_NAME	255
#define ES_MAX_EVENT_TYPE	255

/* SQLSTATEs of the contract. */
#define ERRCODE_ES_WRONG_EXPECTED_VERSION	MAKE_SQLSTATE('E','S','0','0','1')
#define ERRCODE_ES_STREAM_DELETED			MAKE_SQLSTATE('E','S','0','0','2')
#define ERRCODE_ES_EVENT_ID_REUSED			MAKE_SQLSTATE('E','S','0','0','3')
#define ERRCODE_ES_CHECKPOINT_MISMATCH		MAKE_SQLSTATE('E','S','0','0','4')

/*
 * Attribute numbers (1-based) of eventstore.events; the first
 * ES_NUM_EVENT_COLS columns are also the columns of eventstore.event.
 */
#define Anum_es_position		1
#define Anum_es_stream			2
#define Anum_es_version			3
#define Anum_es_event_id		4
#define Anum_es_event_type		5
#define Anum_es_data			6
#define Anum_es_metadata		7
#define Anum_es_created_at		8
#define ES_NUM_EVENT_COLS		8

#endif							/* EVENTSTORE_H */
