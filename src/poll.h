/*-------------------------------------------------------------------------
 *
 * poll.h
 *	  eventstore.poll (poll.c): the next events of a subscription, decoded
 *	  in the calling backend.  Its only entry point is the SQL function
 *	  eventstore_internal.poll.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_POLL_H
#define EVENTSTORE_POLL_H

#include "fmgr.h"

extern Datum eventstore_poll(PG_FUNCTION_ARGS);

#endif							/* EVENTSTORE_POLL_H */
