/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Backend-local cache of the OIDs of the extension's objects
 *	  (catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_CATALOG_H
#define EVENTSTORE_CATALOG_H

/* OIDs of the extension's objects in the current database. */
typedef struct EsCatalog
{
	Oid			events;			/* eventstore.events */
	Oid			position_seq;	/* eventstore.global_position_seq */
	Oid			pkey_idx;		/* (global_position) */
	Oid			stream_idx;		/* (stream, stream_version) */
	Oid			event_id_idx;	/* (event_id) */
	Oid			category_idx;	/* (category(stream), global_position) */
	Oid			type_idx;		/* (event_type, global_position) */
	Oid			event_type;		/* the composite type eventstore.event */
	Oid			subscription;	/* eventstore.subscription */
	Oid			subscription_slot_idx;	/* (slot_name) */
} EsCatalog;

extern void EsCatalogInit(void);
extern const EsCatalog *EsGetCatalog(void);

#endif							/* EVENTSTORE_CATALOG_H */
