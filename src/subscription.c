/*-------------------------------------------------------------------------
 *
 * subscription.c
 *	  C helpers of subscriptions and their polls: the rule that
 *	  create_subscription runs on its own, flushing WAL before a slot
 *	  moves, running-transactions records that keep a slot's restart_lsn
 *	  close, and eventstore.reserved_replication_slots.
 *
 * The slots themselves are slot.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "postmaster/postmaster.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/standby.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "preload.h"
#include "slot.h"
#include "subscription.h"

/* eventstore.reserved_replication_slots: kept free of non-superusers' subscriptions */
int			es_reserved_replication_slots = 2;

/*
 * Shared by _log_running_xacts in every backend: the WAL insert position
 * when it last logged a running-transactions record.
 */
typedef struct EsRunningXactsShared
{
	pg_atomic_uint64 last_logged;
	pg_atomic_uint64 last_logged_at;	/* TimestampTz of the last one */
} EsRunningXactsShared;

static EsRunningXactsShared *es_running_xacts = NULL;

/* Define eventstore.reserved_replication_slots (from _PG_init). */
void
EsSubscriptionInit(void)
{
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
}

/* Shared memory of the running-transactions rate limit. */
Size
EsSubscriptionShmemSize(void)
{
	return sizeof(EsRunningXactsShared);
}

/* Create or attach to the running-transactions rate limit. */
void
EsSubscriptionShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_running_xacts = ShmemInitStruct("eventstore running xacts",
									   sizeof(EsRunningXactsShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&es_running_xacts->last_logged, 0);
		pg_atomic_init_u64(&es_running_xacts->last_logged_at, 0);
	}
	LWLockRelease(AddinShmemInitLock);
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

/*
 * Make every commit so far durable.  poll calls it (through _flush_wal)
 * before moving a slot: with synchronous_commit = off, the checkpoint it
 * moves the slot to might otherwise not survive a crash, while the slot's
 * new position would, and events would be skipped.  No cost when WAL is
 * already flushed.
 */
void
EsFlushWal(void)
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
}

PG_FUNCTION_INFO_V1(eventstore_flush_wal);

/* SQL: _flush_wal() -- EsFlushWal. */
Datum
eventstore_flush_wal(PG_FUNCTION_ARGS pg_attribute_unused())
{
	EsFlushWal();
	PG_RETURN_VOID();
}

/*
 * How far a subscription's slot may trail: when its restart_lsn is more
 * than this behind its confirmed_flush_lsn, _log_running_xacts logs a
 * running-transactions record.
 *
 * Every poll decodes from restart_lsn, and restart_lsn only moves when
 * decoding passes such a record, which PostgreSQL itself logs every 15 s
 * (bgwriter) or at a checkpoint: at 1000 single-event appends a second
 * (~0.9 MB of WAL/s) that is up to ~14 MB decoded again per poll.  Since
 * poll decodes in C without a fixed cost per call (0.2.0), what a poll
 * decodes again is most of what an empty poll costs: 16 kB is ~20
 * single-event transactions, ~0.1 ms of a core.  The cost of a record is
 * small but not nothing: ProcArrayLock while it is built, a few dozen
 * bytes of WAL, and one snapshot file (pg_logical/snapshots, fsynced,
 * removed at checkpoints) written by the first decoding slot that passes
 * it.  So records are rate-limited for the whole server (see below): at
 * most one per ES_RUNNING_XACTS_WAL of WAL or per ES_RUNNING_XACTS_MS,
 * however many subscriptions there are -- at ~1 MB/s of WAL about 10 a
 * second, and in an idle store one, after which the slots catch up.
 */
#define ES_RESTART_LAG_MAX	((XLogRecPtr) 16 * 1024)
#define ES_RUNNING_XACTS_WAL	((XLogRecPtr) 128 * 1024)
#define ES_RUNNING_XACTS_MS		100

/*
 * When the logical slot's restart_lsn trails its confirmed_flush_lsn by
 * more than ES_RESTART_LAG_MAX, log a running-transactions record (what
 * the bgwriter logs every 15 s; PG 16's pg_log_standby_snapshot()) and
 * flush it; returns its end LSN, or InvalidXLogRecPtr when nothing was
 * logged.  (SQL: _log_running_xacts(slot_name), NULL for nothing.)
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
 * Rate limit: nothing is logged while less than ES_RUNNING_XACTS_WAL of WAL
 * was written and less than ES_RUNNING_XACTS_MS passed since the last
 * record logged here, by any backend: such a recent record lies within the
 * lagging slot's window already, and the slot only has to decode and
 * confirm past it.  Nothing either on a standby
 * (no WAL can be written there; PostgreSQL 15 decodes only on a primary)
 * or for a slot that is not a logical slot of this database.
 */
XLogRecPtr
EsLogRunningXactsIfBehind(const char *slot_name)
{
	EsSlotInfo	info;
	uint64		last;
	XLogRecPtr	insert;
	XLogRecPtr	recptr;
	TimestampTz now;

	EsRequirePreloaded();
	if (RecoveryInProgress() || !XLogStandbyInfoActive())
		return InvalidXLogRecPtr;

	if (!EsSlotLookup(slot_name, &info) || info.database != MyDatabaseId ||
		XLogRecPtrIsInvalid(info.restart_lsn) || XLogRecPtrIsInvalid(info.confirmed_flush) ||
		info.confirmed_flush <= info.restart_lsn + ES_RESTART_LAG_MAX)
		return InvalidXLogRecPtr;

	insert = GetXLogInsertRecPtr();
	now = GetCurrentTimestamp();
	last = pg_atomic_read_u64(&es_running_xacts->last_logged);
	if (insert < last + ES_RUNNING_XACTS_WAL &&
		now < (TimestampTz) pg_atomic_read_u64(&es_running_xacts->last_logged_at) +
		ES_RUNNING_XACTS_MS * 1000)
		return InvalidXLogRecPtr;
	/* of several backends here at once, one logs */
	if (!pg_atomic_compare_exchange_u64(&es_running_xacts->last_logged, &last, insert))
		return InvalidXLogRecPtr;
	pg_atomic_write_u64(&es_running_xacts->last_logged_at, (uint64) now);

	recptr = LogStandbySnapshot();

	/*
	 * Decoding reads only flushed WAL: flush, so this poll's peek can pass
	 * the record already.
	 */
	XLogFlush(recptr);
	return recptr;
}

PG_FUNCTION_INFO_V1(eventstore_log_running_xacts);

/* SQL: _log_running_xacts(slot_name) -- EsLogRunningXactsIfBehind. */
Datum
eventstore_log_running_xacts(PG_FUNCTION_ARGS)
{
	XLogRecPtr	recptr = EsLogRunningXactsIfBehind(NameStr(*PG_GETARG_NAME(0)));

	if (XLogRecPtrIsInvalid(recptr))
		PG_RETURN_NULL();
	PG_RETURN_LSN(recptr);
}
