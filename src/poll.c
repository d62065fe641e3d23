/*-------------------------------------------------------------------------
 *
 * poll.c
 *	  eventstore.poll: the next events of a subscription after its
 *	  checkpoint, in commit order, each with its cursor.
 *
 * History (events at or below the subscription's seam) comes from the
 * table, through read_all.  Live events come from the subscription's
 * logical replication slot, decoded here in the calling backend the way
 * pg_logical_slot_peek_changes drives a decoding context, but with the
 * decoder's binary "cursors" output (decoder.h): per event only its commit
 * LSN, index in its transaction and position.  The rows are then fetched
 * by position through the primary key, so no event goes through JSON text.
 *
 * Decoding starts at the slot's restart_lsn and delivers what follows its
 * confirmed position, skipping what the cursor this poll continues from
 * already covers.  The slot moves to the acknowledged checkpoint (once the
 * acknowledgement has committed) before decoding, and past transactions
 * that hold nothing for the subscription when there is nothing to deliver.
 * It never moves to anything this transaction wrote: a rollback would
 * leave the slot past events never acknowledged.
 *
 * The bookkeeping is a few SQL statements, prepared once per backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/rmgr.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/sinval.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "eventstore.h"
#include "catalog.h"
#include "decoder.h"
#include "feed.h"
#include "poll.h"
#include "result.h"
#include "subscription.h"

/* The bookkeeping statements (prepared once per backend). */
#define ES_POLL_SQL_RESTART_POINT \
	"SELECT eventstore_internal.log_running_xacts(t.slot_name)" \
	"  FROM eventstore.subscription AS t" \
	" WHERE t.name = $2 AND pg_catalog.pg_has_role($1, t.owner, 'MEMBER')"

/* Locks the row (after checking the owner); the columns are EsPollState's. */
#define ES_POLL_SQL_LOCK \
	"SELECT s.name, s.slot_name, s.stream_prefix," \
	"       pg_catalog.array_to_string(s.event_types, ','), s.seam_position," \
	"       (s.checkpoint).lsn, (s.checkpoint).seq, (s.checkpoint).position," \
	"       s.polled IS NOT NULL AND s.polled_xid = pg_catalog.pg_current_xact_id()," \
	"       (s.polled).lsn, (s.polled).seq, (s.polled).position," \
	"       s.recovery_position, s.recovery_sample_lsn, s.recovery_sample_position," \
	"       t.xmin, rs.slot_name IS NULL OR rs.wal_status = 'lost', rs.confirmed_flush_lsn," \
	"       eventstore.head_position(), s.event_types" \
	"  FROM eventstore_internal.subscription_lock($1, $2) AS s" \
	"  LEFT JOIN eventstore.subscription AS t ON t.name = s.name" \
	"  LEFT JOIN pg_catalog.pg_replication_slots AS rs ON rs.slot_name = s.slot_name"

#define ES_POLL_SQL_UPDATE \
	"UPDATE eventstore.subscription AS t" \
	"   SET polled = ROW($2, $3, $4)::eventstore.cursor," \
	"       polled_xid = pg_catalog.pg_current_xact_id()," \
	"       recovery_position = $5, recovery_sample_lsn = $6, recovery_sample_position = $7" \
	" WHERE t.name = $1"

typedef struct EsPollPlans
{
	SPIPlanPtr	restart_point;
	SPIPlanPtr	lock;
	SPIPlanPtr	update;
} EsPollPlans;

static EsPollPlans es_plans;

/* A cursor: (lsn, seq) orders, position names the event. */
typedef struct EsCursor
{
	XLogRecPtr	lsn;
	int64		seq;
	int64		position;
} EsCursor;

/* The subscription, as the lock statement returns it. */
typedef struct EsPollState
{
	char	   *name;
	char	   *slot_name;
	char	   *stream_prefix;	/* NULL: every stream */
	char	   *event_types;	/* comma-separated; NULL: every type */
	Datum		event_types_array;	/* text[] of them */
	bool		has_seam;
	int64		seam;
	EsCursor	checkpoint;
	bool		polled_here;	/* this transaction polled already */
	EsCursor	polled;
	int64		recovery_position;
	bool		has_sample;
	XLogRecPtr	sample_lsn;
	int64		sample_position;
	bool		checkpoint_ours;	/* written by this transaction */
	bool		slot_lost;
	XLogRecPtr	confirmed_flush;
	int64		head;
} EsPollState;

/* What the writer callbacks collect while decoding. */
typedef struct EsPollDecode
{
	EsCursor	after;			/* deliver only what follows */
	bool		has_seam;
	int64		seam;			/* and lies above it */
	int			max_count;
	EsDecodedEvent *events;
	int			nevents;
	int			capacity;		/* of events */
	XLogRecPtr	progress;		/* end of the last transaction decoded */
} EsPollDecode;

/* The reader of es_wal_changes_catalogs, freed on error. */
static XLogReaderState *es_scan_reader = NULL;

/*
 * The subscriptions this transaction polled without finding anything (its
 * local transaction id, and names in TopTransactionContext).
 */
static LocalTransactionId es_empty_polls_lxid = InvalidLocalTransactionId;
static List *es_empty_polls = NIL;

static bool
es_polled_empty(const char *name)
{
	ListCell   *lc;

	if (es_empty_polls_lxid != MyProc->lxid)
		return false;
	foreach(lc, es_empty_polls)
	{
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

static void
es_note_empty_poll(const char *name)
{
	MemoryContext old;

	if (es_empty_polls_lxid != MyProc->lxid)
	{
		es_empty_polls = NIL;
		es_empty_polls_lxid = MyProc->lxid;
	}
	/* once a name: a loop of empty polls in one transaction adds nothing */
	if (es_polled_empty(name))
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	es_empty_polls = lappend(es_empty_polls, pstrdup(name));
	MemoryContextSwitchTo(old);
}

static SPIPlanPtr
es_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
es_prepare_plans(void)
{
	Oid			lock_types[2] = {REGROLEOID, TEXTOID};
	Oid			update_types[7] = {TEXTOID, LSNOID, INT8OID, INT8OID, INT8OID, LSNOID, INT8OID};

	if (es_plans.update != NULL)
		return;
	es_plans.restart_point = es_prepare(ES_POLL_SQL_RESTART_POINT, 2, lock_types);
	es_plans.lock = es_prepare(ES_POLL_SQL_LOCK, 2, lock_types);
	es_plans.update = es_prepare(ES_POLL_SQL_UPDATE, 7, update_types);
}

/* Column n (from 1) of the only row of SPI's result. */
static Datum
es_col(int n, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, n, isnull);
}

static char *
es_col_cstring(int n, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = es_col(n, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static int64
es_col_int64(int n, int64 dflt)
{
	bool		isnull;
	Datum		d = es_col(n, &isnull);

	return isnull ? dflt : DatumGetInt64(d);
}

static XLogRecPtr
es_col_lsn(int n)
{
	bool		isnull;
	Datum		d = es_col(n, &isnull);

	return isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
}

/* Lock the subscription row and read it (the lock statement's columns). */
static void
es_poll_lock(Datum *args, char *argnulls, EsPollState *st, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	int			rc;

	rc = SPI_execute_plan(es_plans.lock, args, argnulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "locking subscription failed: %s", SPI_result_code_string(rc));

	st->name = es_col_cstring(1, cxt);
	st->slot_name = MemoryContextStrdup(cxt, NameStr(*DatumGetName(es_col(2, &isnull))));
	st->stream_prefix = es_col_cstring(3, cxt);
	st->event_types = es_col_cstring(4, cxt);
	d = es_col(5, &isnull);
	st->has_seam = !isnull;
	st->seam = isnull ? 0 : DatumGetInt64(d);
	st->checkpoint.lsn = es_col_lsn(6);
	st->checkpoint.seq = es_col_int64(7, 0);
	st->checkpoint.position = es_col_int64(8, 0);
	d = es_col(9, &isnull);
	st->polled_here = !isnull && DatumGetBool(d);
	st->polled.lsn = es_col_lsn(10);
	st->polled.seq = es_col_int64(11, 0);
	st->polled.position = es_col_int64(12, 0);
	st->recovery_position = es_col_int64(13, 0);
	d = es_col(14, &isnull);
	st->has_sample = !isnull;
	st->sample_lsn = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	st->sample_position = es_col_int64(15, 0);
	d = es_col(16, &isnull);
	st->checkpoint_ours = !isnull && TransactionIdIsCurrentTransactionId(DatumGetTransactionId(d));
	d = es_col(17, &isnull);
	st->slot_lost = isnull || DatumGetBool(d);
	st->confirmed_flush = es_col_lsn(18);
	st->head = es_col_int64(19, 0);
	d = es_col(20, &isnull);
	if (isnull)
		st->event_types_array = (Datum) 0;
	else
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		st->event_types_array = datumCopy(d, false, -1);
		MemoryContextSwitchTo(old);
	}
}

static bool
es_cursor_after(XLogRecPtr lsn, int64 seq, const EsCursor *c)
{
	return lsn > c->lsn || (lsn == c->lsn && seq > c->seq);
}

/* Writer callbacks of the decoding context: collect the cursors. */
static void
es_poll_prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn pg_attribute_unused(),
					  TransactionId xid pg_attribute_unused(), bool last_write pg_attribute_unused())
{
	resetStringInfo(ctx->out);
}

static void
es_poll_write(LogicalDecodingContext *ctx, XLogRecPtr lsn pg_attribute_unused(),
			  TransactionId xid pg_attribute_unused(), bool last_write pg_attribute_unused())
{
	EsPollDecode *pd = ctx->output_writer_private;
	StringInfo	out = ctx->out;

	if (out->len == 1 + (int) sizeof(EsDecodedEvent) && out->data[0] == ES_DECODED_EVENT)
	{
		EsDecodedEvent ev;

		memcpy(&ev, out->data + 1, sizeof(ev));
		if (!es_cursor_after(ev.commit_lsn, ev.seq, &pd->after) ||
			(pd->has_seam && ev.position <= pd->seam) ||
			pd->nevents >= pd->max_count)
			return;				/* acknowledged, delivered from history, or enough */
		if (pd->nevents == pd->capacity)
		{
			pd->capacity = (int) Min((int64) pd->capacity * 2, (int64) pd->max_count);
			pd->events = repalloc_huge(pd->events, sizeof(EsDecodedEvent) * pd->capacity);
		}
		pd->events[pd->nevents++] = ev;
	}
	else if (out->len == 1 + (int) sizeof(XLogRecPtr) && out->data[0] == ES_DECODED_PROGRESS)
		memcpy(&pd->progress, out->data + 1, sizeof(XLogRecPtr));
	else
		elog(ERROR, "unexpected message from the eventstore output plugin");
}

/*
 * Decode the slot from its restart_lsn up to end_of_wal, or until
 * max_count events were collected; move the slot first to confirm_first
 * (if valid), and, when nothing was collected, to the end of what was
 * decoded if move_idle (all of it was acknowledged or unwanted).  The caches decoding filled from the
 * historic catalogs are dropped before returning, also on error.
 */
/*
 * Do these invalidations change what decoding reads of a relation: its
 * pg_class row, attributes, type, namespace, the relation map, or a whole
 * catalog?  Those always come with catalog cache messages (and relcache
 * ones).  What does not: statistics (ANALYZE, autovacuum's too, would
 * otherwise throw the caches away after every few thousand appends),
 * relcache-only messages (triggers, policies, publications, relation
 * statistics), snapshot and smgr messages.
 */
static bool
es_invals_matter(SharedInvalidationMessage *msgs, int nmsgs)
{
	for (int i = 0; i < nmsgs; i++)
	{
		int8		id = msgs[i].id;

		if (id >= 0 ? id != STATRELATTINH :
			(id == SHAREDINVALCATALOG_ID || id == SHAREDINVALRELMAP_ID))
			return true;
	}
	return false;
}

/*
 * Does WAL from "from" to "upto" hold a catalog change that matters to
 * decoding (es_invals_matter): in a commit, or in the invalidations
 * logged at the end of a command that changed the catalogs (wal_level =
 * logical, so also the caller's own uncommitted changes)?  Invalidations
 * logged without a transaction id are of in-place updates (VACUUM's
 * relation statistics): a catalog row changes only with one.
 */
static bool
es_wal_changes_catalogs(XLogRecPtr from, XLogRecPtr upto)
{
	bool		found = false;

	es_scan_reader = XLogReaderAllocate(wal_segment_size, NULL,
										XL_ROUTINE(.page_read = read_local_xlog_page,
												   .segment_open = wal_segment_open,
												   .segment_close = wal_segment_close),
										NULL);
	if (es_scan_reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	XLogBeginRead(es_scan_reader, from);
	while (!found && es_scan_reader->EndRecPtr < upto)
	{
		char	   *errm = NULL;
		XLogRecord *record = XLogReadRecord(es_scan_reader, &errm);
		uint8		info;

		if (errm)
			elog(ERROR, "could not read WAL at %X/%X: %s", LSN_FORMAT_ARGS(from), errm);
		if (record == NULL)
			break;
		if (XLogRecGetRmid(es_scan_reader) != RM_XACT_ID)
			continue;
		info = XLogRecGetInfo(es_scan_reader) & XLOG_XACT_OPMASK;
		if (info == XLOG_XACT_INVALIDATIONS &&
			TransactionIdIsValid(XLogRecGetXid(es_scan_reader)))
		{
			xl_xact_invals *invals = (xl_xact_invals *) XLogRecGetData(es_scan_reader);

			found = es_invals_matter(invals->msgs, invals->nmsgs);
		}
		else if (info == XLOG_XACT_COMMIT || info == XLOG_XACT_COMMIT_PREPARED)
		{
			xl_xact_parsed_commit parsed;

			ParseCommitRecord(XLogRecGetInfo(es_scan_reader),
							  (xl_xact_commit *) XLogRecGetData(es_scan_reader), &parsed);
			found = es_invals_matter(parsed.msgs, parsed.nmsgs);
		}
	}
	XLogReaderFree(es_scan_reader);
	es_scan_reader = NULL;
	return found;
}

static List *
es_poll_options(EsPollState *st)
{
	List	   *options = NIL;

	options = lappend(options, makeDefElem("output-format", (Node *) makeString("cursors"), -1));
	if (st->stream_prefix != NULL)
		options = lappend(options, makeDefElem("stream-prefixes",
											   (Node *) makeString(st->stream_prefix), -1));
	if (st->event_types != NULL)
		options = lappend(options, makeDefElem("event-types",
											   (Node *) makeString(st->event_types), -1));
	return options;
}

static void
es_poll_decode(EsPollState *st, EsPollDecode *pd, XLogRecPtr end_of_wal, uint64 inval_count,
			   XLogRecPtr confirm_first, bool move_idle, bool *reached_end)
{
	ResourceOwner old_resowner = CurrentResourceOwner;
	LogicalDecodingContext *ctx;
	volatile bool historic = false;

	CheckLogicalDecodingRequirements();
	ReplicationSlotAcquire(st->slot_name, true);
	PG_TRY();
	{
		if (!XLogRecPtrIsInvalid(confirm_first) &&
			confirm_first > MyReplicationSlot->data.confirmed_flush)
			LogicalConfirmReceivedLocation(confirm_first);

		/*
		 * Decoding must see each change under the catalogs of its time,
		 * while this backend's caches hold the present ones (and whatever
		 * this transaction changed).  pg_logical_slot_get_changes throws
		 * every cache away before and after decoding (with every cached
		 * plan of the backend: the ~4 ms a poll of 0.1.0 cost whatever it
		 * found).  The two differ only if the catalogs changed since the
		 * oldest change decoding may replay -- the slot's restart_lsn.
		 * Every such change is in the WAL scanned here: the caller took in
		 * the invalidations sent so far and flushed WAL to where they were
		 * written, and a change made later is taken in only while decoding,
		 * where it is rebuilt under the historic catalogs.  Only then are
		 * the caches thrown away as pg_logical_slot_get_changes does.
		 */
		historic = es_wal_changes_catalogs(MyReplicationSlot->data.restart_lsn, end_of_wal);
		if (historic)
			InvalidateSystemCaches();

		ctx = CreateDecodingContext(InvalidXLogRecPtr, es_poll_options(st), false,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									es_poll_prepare_write, es_poll_write, NULL);
		ctx->output_writer_private = pd;
		XLogBeginRead(ctx->reader, MyReplicationSlot->data.restart_lsn);

		while (ctx->reader->EndRecPtr < end_of_wal && pd->nevents < pd->max_count)
		{
			XLogRecord *record;
			char	   *errm = NULL;

			record = XLogReadRecord(ctx->reader, &errm);
			if (errm)
				elog(ERROR, "could not find record for logical decoding: %s", errm);
			if (record != NULL)
				LogicalDecodingProcessRecord(ctx, ctx->reader);
			CurrentResourceOwner = old_resowner;
			CHECK_FOR_INTERRUPTS();
		}
		*reached_end = ctx->reader->EndRecPtr >= end_of_wal;

		/*
		 * Nothing to deliver: move past transactions that hold nothing for
		 * the subscription, so WAL does not pile up behind an idle
		 * subscription whose filter matches nothing.  Otherwise confirm the
		 * position again, which applies the restart point candidates this
		 * decoding found.
		 */
		if (move_idle && pd->nevents == 0 && *reached_end &&
			ctx->reader->EndRecPtr > MyReplicationSlot->data.confirmed_flush)
			LogicalConfirmReceivedLocation(ctx->reader->EndRecPtr);
		else if (!XLogRecPtrIsInvalid(MyReplicationSlot->data.confirmed_flush))
			LogicalConfirmReceivedLocation(MyReplicationSlot->data.confirmed_flush);

		FreeDecodingContext(ctx);
		ReplicationSlotRelease();

		/*
		 * An invalidation taken in while decoding may be of a catalog change
		 * after end_of_wal, whose entries decoding then rebuilt as they were
		 * before it: throw them away too.
		 */
		if (historic || SharedInvalidMessageCounter != inval_count)
			InvalidateSystemCaches();
	}
	PG_CATCH();
	{
		CurrentResourceOwner = old_resowner;
		if (es_scan_reader != NULL)
		{
			XLogReaderFree(es_scan_reader);
			es_scan_reader = NULL;
		}
		/* a poll in a subtransaction that fails must not keep the slot */
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		InvalidateSystemCaches();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Fetch the decoded events by position and add them to the result.  The
 * commit of a decoded transaction is in WAL before it is visible to new
 * snapshots: wait for it when a row is not yet visible.
 */
static void
es_poll_fetch(ReturnSetInfo *rsinfo, EsPollDecode *pd, TupleDesc cursor_desc)
{
	const EsCatalog *cat = EsGetCatalog();
	Relation	heap;
	Relation	index;
	TupleTableSlot *slot;
	Snapshot	snap;
	Datum		values[ES_NUM_EVENT_COLS + 1];
	bool		nulls[ES_NUM_EVENT_COLS + 1];

	if (pd->nevents == 0)
		return;
	heap = table_open(cat->events, AccessShareLock);
	index = index_open(cat->pkey_idx, AccessShareLock);
	slot = table_slot_create(heap, NULL);
	snap = RegisterSnapshot(GetLatestSnapshot());

	for (int i = 0; i < pd->nevents; i++)
	{
		EsDecodedEvent *ev = &pd->events[i];
		ScanKeyData key;
		bool		found = false;

		for (int attempt = 0; attempt < 2 && !found; attempt++)
		{
			IndexScanDesc scan;

			if (attempt == 1)
			{
				XactLockTableWait(ev->xid, NULL, NULL, XLTW_None);
				UnregisterSnapshot(snap);
				snap = RegisterSnapshot(GetLatestSnapshot());
			}
			ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(ev->position));
			scan = index_beginscan(heap, index, snap, 1, 0);
			index_rescan(scan, &key, 1, NULL, 0);
			found = index_getnext_slot(scan, ForwardScanDirection, slot);
			index_endscan(scan);
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("decoded event at position " INT64_FORMAT " is not in eventstore.events",
							ev->position)));

		slot_getsomeattrs(slot, ES_NUM_EVENT_COLS);
		memcpy(values, slot->tts_values, sizeof(Datum) * ES_NUM_EVENT_COLS);
		memcpy(nulls, slot->tts_isnull, sizeof(bool) * ES_NUM_EVENT_COLS);
		{
			Datum		cv[3] = {LSNGetDatum(ev->commit_lsn), Int64GetDatum(ev->seq),
			Int64GetDatum(ev->position)};
			bool		cn[3] = {false, false, false};

			values[ES_NUM_EVENT_COLS] = HeapTupleGetDatum(heap_form_tuple(cursor_desc, cv, cn));
			nulls[ES_NUM_EVENT_COLS] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		ExecClearTuple(slot);
		CHECK_FOR_INTERRUPTS();
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
}

/*
 * The history part: events at or below the seam, from the table, through
 * the gap-safe feed (feed.h), in position order.
 */
static int
es_poll_history(ReturnSetInfo *rsinfo, EsPollState *st, EsCursor *cur, int max_count,
				TupleDesc cursor_desc)
{
	EsFeedRead *rd;
	TupleTableSlot *slot;
	Datum		values[ES_NUM_EVENT_COLS + 1];
	bool		nulls[ES_NUM_EVENT_COLS + 1];
	int			n = 0;

	rd = EsFeedOpen(cur->seq,
					st->stream_prefix ? cstring_to_text(st->stream_prefix) : NULL,
					st->event_types ? DatumGetArrayTypeP(st->event_types_array) : NULL,
					false);
	while (n < max_count && (slot = EsFeedNext(rd)) != NULL)
	{
		Datum		cv[3];
		bool		cn[3] = {false, false, false};
		int64		position;
		HeapTuple	ctup;

		slot_getsomeattrs(slot, ES_NUM_EVENT_COLS);
		position = DatumGetInt64(slot->tts_values[Anum_es_position - 1]);
		if (position > st->seam)
			break;
		memcpy(values, slot->tts_values, sizeof(Datum) * ES_NUM_EVENT_COLS);
		memcpy(nulls, slot->tts_isnull, sizeof(bool) * ES_NUM_EVENT_COLS);
		cur->lsn = InvalidXLogRecPtr;
		cur->seq = cur->position = position;
		cv[0] = LSNGetDatum(cur->lsn);
		cv[1] = Int64GetDatum(cur->seq);
		cv[2] = Int64GetDatum(cur->position);
		ctup = heap_form_tuple(cursor_desc, cv, cn);
		values[ES_NUM_EVENT_COLS] = HeapTupleGetDatum(ctup);
		nulls[ES_NUM_EVENT_COLS] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		heap_freetuple(ctup);
		n++;
	}
	EsFeedClose(rd);
	return n;
}

static void
es_poll_update(EsPollState *st, const EsCursor *cur)
{
	Datum		args[7];
	char		argnulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	args[0] = CStringGetTextDatum(st->name);
	args[1] = LSNGetDatum(cur->lsn);
	args[2] = Int64GetDatum(cur->seq);
	args[3] = Int64GetDatum(cur->position);
	args[4] = Int64GetDatum(st->recovery_position);
	args[5] = LSNGetDatum(st->sample_lsn);
	args[6] = Int64GetDatum(st->sample_position);
	if (!st->has_sample)
		argnulls[5] = argnulls[6] = 'n';
	rc = SPI_execute_plan(es_plans.update, args, argnulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "updating subscription failed: %s", SPI_result_code_string(rc));
}

static void
es_poll_lost_slot(EsPollState *st)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("subscription \"%s\" has lost its replication slot \"%s\"",
					st->name, st->slot_name),
			 errdetail("The last acknowledged position is " INT64_FORMAT "; every matching event up to position " INT64_FORMAT " was acknowledged (events commit out of position order).",
					   st->checkpoint.position, st->recovery_position),
			 st->recovery_position < st->checkpoint.position ?
			 errhint("Drop the subscription and create it again with from_position => " INT64_FORMAT "; events it delivers up to position " INT64_FORMAT " may have been delivered before. Raise max_slot_wal_keep_size to keep more WAL for slow consumers.",
					 st->recovery_position, st->checkpoint.position) :
			 errhint("Drop the subscription and create it again with from_position => " INT64_FORMAT ". Raise max_slot_wal_keep_size to keep more WAL for slow consumers.",
					 st->recovery_position)));
}

PG_FUNCTION_INFO_V1(eventstore_poll);

/* SQL: eventstore_internal.poll(caller, name, max_count) */
Datum
eventstore_poll(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			caller = PG_GETARG_OID(0);
	text	   *name = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	int			max_count;
	EsPollState st;
	EsCursor	cur;
	TupleDesc	cursor_desc;
	MemoryContext cxt = CurrentMemoryContext;
	int			n = 0;
	bool		had_sample;
	int64		recovery_position;
	uint64		inval_count;
	XLogRecPtr	durable_upto;

	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be at least 1")));
	max_count = PG_GETARG_INT32(2);

	EsInitEventResult(fcinfo);
	if (rsinfo->setDesc->natts != ES_NUM_EVENT_COLS + 1)
		elog(ERROR, "eventstore_internal.poll must return the event columns and a cursor");
	cursor_desc = lookup_rowtype_tupdesc_copy(TupleDescAttr(rsinfo->setDesc, ES_NUM_EVENT_COLS)->atttypid, -1);

	AcceptInvalidationMessages();
	inval_count = SharedInvalidMessageCounter;
	durable_upto = EsWalInsertEnd();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	es_prepare_plans();

	/*
	 * Keep the slot's restart_lsn near its confirmed position, so decoding
	 * does not read the same WAL again and again.  Before the row lock:
	 * this transaction may have no xid yet, and then does not hold the new
	 * restart point back.
	 */
	{
		Datum		args[2] = {ObjectIdGetDatum(caller),
		name ? PointerGetDatum(name) : (Datum) 0};
		char		argnulls[2] = {' ', name ? ' ' : 'n'};

		if (SPI_execute_plan(es_plans.restart_point, args, argnulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "logging a restart point failed");
		es_poll_lock(args, argnulls, &st, cxt);
	}

	had_sample = st.has_sample;
	recovery_position = st.recovery_position;

	/* a second poll in one transaction continues after the first */
	cur = st.polled_here ? st.polled : st.checkpoint;

	if (st.slot_lost)
		es_poll_lost_slot(&st);

	/* History: events at or below the seam, from the table. */
	if (st.has_seam && cur.lsn == InvalidXLogRecPtr && cur.seq < st.seam)
	{
		n = es_poll_history(rsinfo, &st, &cur, max_count, cursor_desc);
		if (n == 0 && st.head >= st.seam)
		{
			/* history is complete: remember it, so later polls go live at once */
			cur.lsn = InvalidXLogRecPtr;
			cur.seq = cur.position = st.seam;
		}
		if (n > 0 || cur.seq < st.seam)
		{
			es_poll_update(&st, &cur);
			SPI_finish();
			return (Datum) 0;
		}
	}

	/* Live: decode the slot. */
	{
		EsPollDecode pd;
		XLogRecPtr	confirm_first = InvalidXLogRecPtr;
		XLogRecPtr	end_of_wal;
		bool		reached_end = false;

		memset(&pd, 0, sizeof(pd));
		pd.after = cur;
		pd.has_seam = st.has_seam;
		pd.seam = st.seam;
		pd.max_count = max_count;
		pd.capacity = Min(max_count, 64);
		pd.events = palloc(sizeof(EsDecodedEvent) * pd.capacity);

		/*
		 * Bring the slot to the acknowledged checkpoint -- once that
		 * acknowledgement committed, and it is durable.
		 */
		if (!st.checkpoint_ours && st.checkpoint.lsn > st.confirmed_flush)
			confirm_first = st.checkpoint.lsn;
		/*
		 * A recovery sample (see the table): the head, then where WAL ends.
		 * It completes in the first poll whose decoding reaches it.
		 */
		if (!st.has_sample && st.head > st.recovery_position)
		{
			st.sample_position = st.head;
			st.sample_lsn = GetXLogInsertRecPtr();
			st.has_sample = true;
		}
		/*
		 * Flush WAL to where it ended when the poll began, after it took in
		 * the catalog invalidations sent so far: what they invalidate is
		 * then in the WAL decoding reads (see es_poll_decode).  Also makes
		 * the checkpoint's commit durable before the slot moves to it (with
		 * synchronous_commit = off it might otherwise not survive a crash
		 * while the slot's position would).  No cost when WAL is flushed
		 * already -- and not this transaction's own row lock, which would
		 * cost an fsync a poll.  Invalidations taken in since (while
		 * locking): flush to the end.
		 */
		if (SharedInvalidMessageCounter != inval_count)
		{
			AcceptInvalidationMessages();
			inval_count = SharedInvalidMessageCounter;
			EsFlushWal();
		}
		else
			XLogFlush(durable_upto);
		end_of_wal = GetFlushRecPtr(NULL);

		/*
		 * The slot moves past transactions without events for us only while
		 * this poll continues from the committed checkpoint.
		 */
		es_poll_decode(&st, &pd, end_of_wal, inval_count, confirm_first,
					   !st.checkpoint_ours &&
					   cur.lsn == st.checkpoint.lsn && cur.seq == st.checkpoint.seq,
					   &reached_end);
		es_poll_fetch(rsinfo, &pd, cursor_desc);
		n = pd.nevents;
		if (n > 0)
		{
			EsDecodedEvent *last = &pd.events[n - 1];

			cur.lsn = last->commit_lsn;
			cur.seq = last->seq;
			cur.position = last->position;
		}

		/*
		 * Nothing to deliver after the checkpoint, everything up to the
		 * flushed end of WAL decoded: every matching event that committed
		 * before the sample's LSN is acknowledged, so the sampled head is a
		 * recovery point.
		 */
		if (n == 0 && reached_end &&
			cur.lsn == st.checkpoint.lsn && cur.seq == st.checkpoint.seq &&
			st.sample_lsn <= end_of_wal)
		{
			st.recovery_position = Max(st.recovery_position, st.sample_position);
			st.has_sample = false;
		}
	}

	/*
	 * Write the row only when something changed: a poll that finds nothing
	 * writes no WAL, which the next poll would decode again.  ack(name)
	 * after it learns from es_note_empty_poll that this transaction polled.
	 */
	if (n > 0 || st.polled_here || st.has_sample != had_sample ||
		st.recovery_position != recovery_position)
		es_poll_update(&st, &cur);
	else
		es_note_empty_poll(st.name);
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(eventstore_polled_empty);

/*
 * SQL: eventstore_internal.polled_empty(name) -- did this transaction poll
 * the subscription and find nothing (so poll left its row as it was)?
 */
Datum
eventstore_polled_empty(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(es_polled_empty(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}
