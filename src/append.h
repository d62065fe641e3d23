/*-------------------------------------------------------------------------
 *
 * append.h
 *	  Appending events, and the limits on an event's size and depth
 *	  (append.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_APPEND_H
#define EVENTSTORE_APPEND_H

/*
 * Limits of eventstore.max_event_size and eventstore.max_event_depth: the
 * largest and deepest events every delivery path can carry (see
 * EsAppendInit).
 */
#define ES_MAX_EVENT_SIZE_LIMIT		(128 * 1024 * 1024)
#define ES_MAX_EVENT_DEPTH_LIMIT	1000

/*
 * The JSON text of an event's data and metadata, every string escaped, may
 * take at most this many times eventstore.max_event_size.
 */
#define ES_EVENT_TEXT_FACTOR		6

/* eventstore.max_event_size: bytes of data + metadata per event */
extern int	es_max_event_size;

/* eventstore.max_event_depth: nesting of arrays and objects per event */
extern int	es_max_event_depth;

extern void EsAppendInit(void);

#endif							/* EVENTSTORE_APPEND_H */
