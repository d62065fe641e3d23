/*-------------------------------------------------------------------------
 *
 * decoder.h
 *	  The output plugin "eventstore" (decoder.c): its binary "cursors"
 *	  output format, which eventstore.poll (poll.c) decodes with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_DECODER_H
#define EVENTSTORE_DECODER_H

#include "access/xlogdefs.h"

/*
 * output-format cursors: every message is one kind byte and a struct in
 * this process's byte order (the messages never leave the process that
 * decodes them: eventstore.poll).
 */
#define ES_DECODED_EVENT	'E'		/* then an EsDecodedEvent */
#define ES_DECODED_PROGRESS 'P'		/* then the XLogRecPtr ending a commit */

typedef struct EsDecodedEvent
{
	XLogRecPtr	commit_lsn;		/* of the event's transaction */
	int64		seq;			/* index among its events, before filtering */
	int64		position;		/* global position */
	TransactionId xid;			/* the transaction, to wait for its visibility */
} EsDecodedEvent;

#endif							/* EVENTSTORE_DECODER_H */
