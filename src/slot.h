/*-------------------------------------------------------------------------
 *
 * slot.h
 *	  Replication slots of subscriptions, created and dropped with the
 *	  transaction (slot.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_SLOT_H
#define EVENTSTORE_SLOT_H

#include "access/xlogdefs.h"

/* What EsSlotLookup reports of a replication slot. */
typedef struct EsSlotInfo
{
	Oid			database;
	bool		temporary;
	int			active_pid;		/* 0: not in use */
	XLogRecPtr	restart_lsn;
	XLogRecPtr	confirmed_flush;
} EsSlotInfo;

extern void EsSlotInit(void);
extern bool EsSlotLookup(const char *name, EsSlotInfo *info);

#endif							/* EVENTSTORE_SLOT_H */
