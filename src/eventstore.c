/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *	  Module entry: _PG_init, settings, shared memory hooks, and the
 *	  small SQL helpers that belong to no other file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/standby.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "eventstore.h"

PG_MODULE_MAGIC;

/* eventstore.max_event_size: bytes of data + metadata per event */
int			es_max_event_size = 1024 * 1024;

/* eventstore.max_event_depth: nesting of arrays and objects per event */
int			es_max_event_depth = 100;

#ifdef EVENTSTORE_BENCHMARK
/* eventstore.debug_skip_registry: benchmark builds only */
bool		es_debug_skip_registry = false;
#endif

/* eventstore.reserved_replication_slots: kept free of non-superusers' subscriptions */
int			es_reserved_replication_slots = 2;

/* true when the library was loaded through shared_preload_libraries */
bool		es_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Shared by _log_running_xacts in every backend: the WAL insert position
 * when it last logged a running-transactions record.
 */
typedef struct EsRunningXactsShared
{
	pg_atomic_uint64 last_logged;
} EsRunningXactsShared;

static EsRunningXactsShared *es_running_xacts = NULL;

void		_PG_init(void);

/* Ask for the shared memory of the in-flight registry and the others. */
static void
es_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(EsRegistryShmemSize());
	RequestAddinShmemSpace(EsWorkerShmemSize());
	RequestAddinShmemSpace(sizeof(EsRunningXactsShared));
}

/* Create or attach to the in-flight registry and the others. */
static void
es_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	EsRegistryShmemInit();
	EsWorkerShmemInit();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_running_xacts = ShmemInitStruct("eventstore running xacts",
									   sizeof(EsRunningXactsShared), &found);
	if (!found)
		pg_atomic_init_u64(&es_running_xacts->last_logged, 0);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Module load.  Settings are defined whenever the library is loaded; the
 * shared memory and its hooks only when it is preloaded.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("eventstore.max_event_size",
							"Largest accepted event (data plus metadata, as stored).",
							"Appends of a larger event fail with SQLSTATE 54000.",
							&es_max_event_size,
							1024 * 1024,
							1024,
							ES_MAX_EVENT_SIZE_LIMIT,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	/*
	 * The limits are what every delivery path can carry.  The output
	 * plugin's line of an event holds its data and metadata as JSON text,
	 * up to ES_EVENT_TEXT_FACTOR times as large as stored (a control
	 * character is stored as one byte and written as \u00XX), and a line
	 * is one text datum, at most 1 GB; poll parses it back into a jsonb
	 * whose containers hold at most 256 MB.  128 MB leaves room for both.
	 * Parsing JSON recurses once per level: 1000 levels take well under
	 * the default max_stack_depth from inside poll's PL/pgSQL, and 100,
	 * the default, is what common JSON parsers of consumers accept.
	 */
	DefineCustomIntVariable("eventstore.max_event_depth",
							"Deepest accepted nesting of arrays and objects in an event's data or metadata.",
							"Appends of a deeper event fail with SQLSTATE 54000.",
							&es_max_event_depth,
							100,
							1,
							ES_MAX_EVENT_DEPTH_LIMIT,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
#ifdef EVENTSTORE_BENCHMARK
	DefineCustomBoolVariable("eventstore.debug_skip_registry",
							 "Benchmarks only: appends skip the in-flight registry.",
							 "Measures the cost of the gap-safe feed.  While on, global "
							 "reads may skip events committed out of position order.",
							 &es_debug_skip_registry,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
#endif
	DefineCustomIntVariable("eventstore.reserved_replication_slots",
							"Replication slots that subscriptions of roles other than superusers leave free.",
							"create_subscription by a role that is not a superuser fails with "
							"SQLSTATE 53400 when fewer would be free of max_replication_slots.",
							&es_reserved_replication_slots,
							2,
							0,
							MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	EsWorkerInit();
	EsResultInit();
	MarkGUCPrefixReserved("eventstore");

	EsCatalogRegisterCallbacks();
	EsSlotRegisterHooks();

	if (!process_shared_preload_libraries_in_progress)
		return;

	es_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_shmem_startup;
	EsRegistryRegisterCallbacks();
}

/* Error out, with a hint naming the setting, unless preloaded. */
void
EsRequirePreloaded(void)
{
	if (!es_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore must be loaded via \"shared_preload_libraries\""),
				 errdetail("The gap-safe global feed keeps its registry of in-flight appends in shared memory."),
				 errhint("Add eventstore to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

PG_FUNCTION_INFO_V1(eventstore_assert_preloaded);

/* SQL: called by the install script so CREATE EXTENSION fails early. */
Datum
eventstore_assert_preloaded(PG_FUNCTION_ARGS)
{
	EsRequirePreloaded();
	PG_RETURN_VOID();
}

/* The category of a stream name: a new text, the part before the first '-'. */
text *
EsCategoryOf(text *stream)
{
	const char *s = VARDATA_ANY(stream);
	int			len = VARSIZE_ANY_EXHDR(stream);
	const char *dash = memchr(s, '-', len);

	return cstring_to_text_with_len(s, dash == NULL ? len : dash - s);
}

PG_FUNCTION_INFO_V1(eventstore_prevent_in_transaction_block);

/*
 * SQL: _prevent_in_transaction_block(what) -- for create_subscription.
 * Its slot follows the transaction (slot.c), but a new logical slot waits
 * for every transaction with writes to end and cannot be created once its
 * own transaction has written, so it runs as a statement of its own.
 * (drop_subscription needs no such rule: the drop happens at commit.)
 */
Datum
eventstore_prevent_in_transaction_block(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (IsTransactionBlock() || IsSubTransaction())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block", what),
				 errdetail("It creates a replication slot, in a transaction of its own."),
				 errhint("Call it on its own, outside BEGIN ... COMMIT.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(eventstore_flush_wal);

/*
 * SQL: _flush_wal() -- make every commit so far durable.  poll calls it
 * before moving a slot: with synchronous_commit = off, the checkpoint it
 * moves the slot to might otherwise not survive a crash, while the slot's
 * new position would, and events would be skipped.  No cost when WAL is
 * already flushed.
 */
Datum
eventstore_flush_wal(PG_FUNCTION_ARGS pg_attribute_unused())
{
	XLogRecPtr	upto = GetXLogInsertRecPtr();
	uint32		off = upto % XLOG_BLCKSZ;

	/*
	 * When nothing was inserted on the current page yet, the insert
	 * position points just past its header, which is not written: flush to
	 * the page's start, where the last record ended.
	 */
	if (off == SizeOfXLogShortPHD ||
		(off == SizeOfXLogLongPHD &&
		 XLogSegmentOffset(upto, wal_segment_size) == SizeOfXLogLongPHD))
		upto -= off;
	XLogFlush(upto);
	PG_RETURN_VOID();
}

/*
 * How far a subscription's slot may trail: when its restart_lsn is more
 * than this behind its confirmed_flush_lsn, _log_running_xacts logs a
 * running-transactions record.
 *
 * Every poll decodes from restart_lsn (pg_replication_slot_advance and
 * pg_logical_slot_peek_changes both start there), and restart_lsn only
 * moves when decoding passes such a record, which PostgreSQL itself logs
 * every 15 s (bgwriter) or at a checkpoint: at 1000 single-event appends a
 * second (~0.9 MB of WAL/s) that is up to ~14 MB decoded again per poll.
 * The cost of this limit is what a poll decodes again, up to about this
 * much WAL twice (advance, then peek): 256 kB is ~300 single-event
 * transactions, ~2-3 ms of a core at the ~100 MB/s decoding measured in
 * bench/DECODING.md.  The cost of a record is small but not nothing:
 * ProcArrayLock while it is built, a few dozen bytes of WAL, and every
 * decoding slot that passes it writes a snapshot file (pg_logical/snapshots,
 * fsynced, removed at checkpoints).  Records are logged at most once per
 * half this much WAL for the whole server (see below), so at most 8 a
 * second at ~1 MB/s of WAL, however many subscriptions there are.
 * Measured at 1000 events/s (bench/DECODING.md): 256 kB keeps the lag at
 * ~130 kB on average and a poll at ~4.7 ms of CPU (13.8 ms without the
 * records); 64 kB cut the lag to ~40 kB but the CPU only to ~4.4 ms, as
 * what remains is a fixed cost per decoding call.  So not lower.
 */
#define ES_RESTART_LAG_MAX	((XLogRecPtr) 256 * 1024)

PG_FUNCTION_INFO_V1(eventstore_log_running_xacts);

/*
 * SQL: _log_running_xacts(slot_name) -- when the logical slot's restart_lsn
 * trails its confirmed_flush_lsn by more than ES_RESTART_LAG_MAX, log a
 * running-transactions record (what the bgwriter logs every 15 s; PG 16's
 * pg_log_standby_snapshot()) and flush it; returns its end LSN, or NULL
 * when nothing was logged.
 *
 * Decoding that passes the record makes its LSN a candidate for the slot's
 * restart_lsn (restart there, or where the oldest transaction still running
 * at it needs), applied once confirmed_flush_lsn reaches the record: poll's
 * advance to the acknowledged checkpoint does that, or the next peek, which
 * applies candidates already behind confirmed_flush_lsn at once.  Called
 * before poll takes any row lock, so the poll's own transaction has no xid
 * yet and does not hold the candidate back -- unless the consumer wrote
 * something earlier in that transaction (then the next record moves it).
 *
 * Rate limit: nothing is logged while less than ES_RESTART_LAG_MAX / 2 of
 * WAL was written since the last record logged here, by any backend: such
 * a recent record lies within the lagging slot's window already, and the
 * slot only has to decode and confirm past it.  Nothing either on a standby
 * (no WAL can be written there; PostgreSQL 15 decodes only on a primary)
 * or for a slot that is not a logical slot of this database.
 */
Datum
eventstore_log_running_xacts(PG_FUNCTION_ARGS)
{
	const char *slot_name = NameStr(*PG_GETARG_NAME(0));
	EsSlotInfo	info;
	uint64		last;
	XLogRecPtr	insert;
	XLogRecPtr	recptr;

	EsRequirePreloaded();
	if (RecoveryInProgress() || !XLogStandbyInfoActive())
		PG_RETURN_NULL();

	if (!EsSlotLookup(slot_name, &info) || info.database != MyDatabaseId ||
		XLogRecPtrIsInvalid(info.restart_lsn) || XLogRecPtrIsInvalid(info.confirmed_flush) ||
		info.confirmed_flush <= info.restart_lsn + ES_RESTART_LAG_MAX)
		PG_RETURN_NULL();

	insert = GetXLogInsertRecPtr();
	last = pg_atomic_read_u64(&es_running_xacts->last_logged);
	if (insert < last + ES_RESTART_LAG_MAX / 2)
		PG_RETURN_NULL();
	/* of several backends here at once, one logs */
	if (!pg_atomic_compare_exchange_u64(&es_running_xacts->last_logged, &last, insert))
		PG_RETURN_NULL();

	recptr = LogStandbySnapshot();

	/*
	 * Decoding reads only flushed WAL: flush, so this poll's peek can pass
	 * the record already.  At most once per ES_RESTART_LAG_MAX / 2 of WAL.
	 */
	XLogFlush(recptr);
	PG_RETURN_LSN(recptr);
}

PG_FUNCTION_INFO_V1(eventstore_category);

/* SQL: category(stream) -- the part of the name before the first '-'. */
Datum
eventstore_category(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(EsCategoryOf(PG_GETARG_TEXT_PP(0)));
}
