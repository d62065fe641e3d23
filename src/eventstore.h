/*-------------------------------------------------------------------------
 *
 * eventstore.h
 *	  Declarations shared by the eventstore extension's source files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "fmgr.h"
#include "utils/snapshot.h"

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

/* OIDs of the extension's objects in the current database (catalog.c). */
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

/*
 * Limits of eventstore.max_event_size and eventstore.max_event_depth: the
 * largest and deepest events every delivery path can carry (eventstore.c).
 */
#define ES_MAX_EVENT_SIZE_LIMIT		(128 * 1024 * 1024)
#define ES_MAX_EVENT_DEPTH_LIMIT	1000

/*
 * The JSON text of an event's data and metadata, every string escaped, may
 * take at most this many times eventstore.max_event_size (append.c).
 */
#define ES_EVENT_TEXT_FACTOR		6

/* eventstore.c */
extern int	es_max_event_size;
extern int	es_max_event_depth;
extern bool es_preloaded;
#ifdef EVENTSTORE_BENCHMARK
extern bool es_debug_skip_registry;
#else
/* the switch exists only in benchmark builds (make BENCHMARK=1) */
#define es_debug_skip_registry false
#endif
extern int	es_reserved_replication_slots;
extern void EsRequirePreloaded(void);
extern text *EsCategoryOf(text *stream);

/* catalog.c */
extern const EsCatalog *EsGetCatalog(void);
extern void EsCatalogRegisterCallbacks(void);

/* registry.c */
extern Size EsRegistryShmemSize(void);
extern void EsRegistryShmemInit(void);
extern void EsRegistryRegisterCallbacks(void);
extern int64 EsAllocatePosition(const EsCatalog *cat);
extern int64 EsSafeHorizon(const EsCatalog *cat);

/* slot.c (and the SQL functions _create_slot, _drop_slot_at_commit) */
typedef struct EsSlotInfo
{
	Oid			database;
	bool		temporary;
	int			active_pid;		/* 0: not in use */
	XLogRecPtr	restart_lsn;
	XLogRecPtr	confirmed_flush;
} EsSlotInfo;
extern bool EsSlotLookup(const char *name, EsSlotInfo *info);
extern void EsSlotRegisterHooks(void);

/* worker.c */
extern Size EsWorkerShmemSize(void);
extern void EsWorkerShmemInit(void);
extern void EsWorkerInit(void);
extern void EsWakeWorker(Oid dbid);

/* result.c */
struct ReturnSetInfo;
struct TupleTableSlot;
extern void EsResultInit(void);
extern void EsInitEventResult(FunctionCallInfo fcinfo);
extern void EsPutEvent(struct ReturnSetInfo *rsinfo, struct TupleTableSlot *slot);

/* stream.c */
extern void EsCheckStreamName(text *stream);
extern void EsLockStream(text *stream);
extern int64 EsCurrentVersion(const EsCatalog *cat, text *stream,
							  Snapshot snapshot);
extern bool EsFindEventById(const EsCatalog *cat, Datum event_id,
							Snapshot snapshot, text **stream, int64 *version,
							int64 *position);

#endif							/* EVENTSTORE_H */
