/*-------------------------------------------------------------------------
 *
 * subscription.h
 *	  Helpers of subscriptions and their polls (subscription.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_SUBSCRIPTION_H
#define EVENTSTORE_SUBSCRIPTION_H

#include "access/xlogdefs.h"

/* eventstore.reserved_replication_slots */
extern int	es_reserved_replication_slots;

extern void EsSubscriptionInit(void);
extern Size EsSubscriptionShmemSize(void);
extern void EsSubscriptionShmemInit(void);
extern void EsFlushWal(void);
extern XLogRecPtr EsLogRunningXactsIfBehind(const char *slot_name);

#endif							/* EVENTSTORE_SUBSCRIPTION_H */
