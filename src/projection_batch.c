/*-------------------------------------------------------------------------
 *
 * projection_batch.c
 *	  One batch of a projection, in C: run_projection (in the caller's
 *	  transaction), the background worker (a transaction a batch) and an
 *	  inline projection's history (create_projection, reset_projection).
 *
 * A batch locks the projection's row (the lock serializes runners: no
 * event is applied twice), reads the events after the checkpoint through
 * the gap-safe feed (feed.h: never past the safe horizon, so nothing is
 * ever skipped), calls the handler (projection.h: as the projection's
 * owner, with every restriction) once per event -- or once with the whole
 * batch, in position order, for a batch handler taking
 * eventstore.event[] -- and moves the checkpoint once, in the same
 * transaction: exactly once.
 *
 * Failures.  The batch runs in one subtransaction while the index of the
 * event being handled is recorded, so a failing per-event handler names
 * its event without a probe pass: the subtransaction is rolled back, the
 * events before the failing one are applied again in a new one, and the
 * checkpoint is saved right before the failing event.  A batch handler
 * sees many events in one call, so its failing batch is narrowed by
 * bisection: halves are applied in subtransactions (a half that succeeds
 * is kept, one that fails is split again) until the single failing event
 * is found, with every event before it applied.  Then the worker records
 * the error (eventstore_internal.worker_failed: last_error, backoff) and
 * the projection stalls there, never skipping it; run_projection and an
 * inline history fail with the handler's error, its CONTEXT naming the
 * event's position.  A cancel (the worker's time limit, a
 * drop/reset/alter_projection, an administrator) is not a handler
 * failure: it ends the batch at once.
 *
 * The bookkeeping is a few set-based statements through SPI plans
 * prepared once per backend; nothing per event goes through SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

#include "catalog.h"
#include "eventstore.h"
#include "feed.h"
#include "projection.h"
#include "projection_batch.h"

/*
 * Events held in memory at once: a batch of more (run_projection with a
 * larger max_count or NULL, an inline projection's history) is applied in
 * chunks of this many, each one call of a batch handler.
 */
#define ES_MAX_CHUNK	100000

/* Who runs the batch. */
typedef enum EsBatchKind
{
	ES_BATCH_WORKER,			/* the worker: skip a locked row, record failures */
	ES_BATCH_RUN,				/* run_projection: check the owner, wait for the lock, fail */
	ES_BATCH_HISTORY			/* an inline projection's history: fail */
} EsBatchKind;

/* Plans of the bookkeeping statements, prepared once per backend. */
static SPIPlanPtr es_plan_lock_worker = NULL;
static SPIPlanPtr es_plan_lock_run = NULL;
static SPIPlanPtr es_plan_row = NULL;
static SPIPlanPtr es_plan_checkpoint = NULL;
static SPIPlanPtr es_plan_save = NULL;
static SPIPlanPtr es_plan_failed = NULL;
static SPIPlanPtr es_plan_clear = NULL;

/* The columns every lock statement returns. */
#define ES_ROW_COLUMNS \
	"p.handler::pg_catalog.oid, p.owner::pg_catalog.oid, p.stream_prefix, p.event_types, p.search_path"

/* One batch being applied. */
typedef struct EsBatch
{
	const char *name;
	EsHandler	handler;
	MemoryContext events_cxt;	/* the chunk's events */
	MemoryContext call_cxt;		/* one handler call */
	Datum	   *events;			/* composite datums of eventstore.event */
	int64	   *positions;
	int			n;				/* events in the chunk */
	int			allocated;		/* room in events and positions */
	int			current;		/* index of the event (first event) being handled */
	Oid			event_type;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	ErrorData  *error;			/* of the failing event, in the caller's context */
	MemoryContext error_cxt;
} EsBatch;

/* A kept plan, prepared on first use. */
static SPIPlanPtr
es_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "could not keep the plan of \"%s\"", sql);
		*plan = p;
	}
	return *plan;
}

/* Run a kept plan, erroring unless it returns the expected kind of result. */
static void
es_exec(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "unexpected SPI result %s in a projection batch", SPI_result_code_string(rc));
}

/* Call the handler for events [lo, hi) of the chunk, in the current (sub)transaction. */
static void
es_batch_apply(EsBatch *b, int lo, int hi)
{
	MemoryContext old = MemoryContextSwitchTo(b->call_cxt);
	int			nestlevel = EsHandlerBegin(&b->handler);

	if (b->handler.batch)
	{
		ArrayType  *arr = construct_array(&b->events[lo], hi - lo, b->event_type,
										  b->typlen, b->typbyval, b->typalign);

		b->current = lo;
		EsHandlerCall(&b->handler, PointerGetDatum(arr));
		MemoryContextReset(b->call_cxt);
	}
	else
	{
		for (int i = lo; i < hi; i++)
		{
			CHECK_FOR_INTERRUPTS();
			b->current = i;
			EsHandlerCall(&b->handler, b->events[i]);
			MemoryContextReset(b->call_cxt);
		}
	}
	EsHandlerEnd(nestlevel);
	MemoryContextSwitchTo(old);
}

/*
 * Apply events [lo, hi) in a subtransaction: kept on success; on a handler
 * error rolled back, the error kept in b->error (replacing an older one)
 * and false returned, b->current naming the event.  A cancel is no
 * handler error: it is thrown on.
 */
static bool
es_batch_try(EsBatch *b, int lo, int hi)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		es_batch_apply(b, lo, hi);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(b->error_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		EsHandlerFailed(&b->handler);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		if (b->error != NULL)
			FreeErrorData(b->error);
		b->error = edata;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Apply the chunk's events, narrowing a failure to its event (see the
 * file header).  Returns how many events, from the first, are applied;
 * *failed is the index of the failing event, or -1.  keep_prefix false
 * (the error is thrown on, undoing everything) skips applying the prefix
 * of a per-event handler again.
 */
static int
es_batch_apply_narrowed(EsBatch *b, bool keep_prefix, int *failed)
{
	int			n = b->n;

	*failed = -1;
	if (!b->handler.batch)
	{
		int			f;

		if (es_batch_try(b, 0, n))
			return n;
		f = b->current;
		/* the prefix again; a handler that now fails earlier stops there */
		while (keep_prefix && f > 0 && !es_batch_try(b, 0, f))
			f = b->current;
		*failed = f;
		return f;
	}
	else
	{
		int			start = 0;

		while (start < n)
		{
			int			end = n;
			bool		known;

			if (es_batch_try(b, start, end))
				return n;
			/* [start, end) fails after [0, start) */
			known = true;
			while (end - start > 1)
			{
				int			mid = start + (end - start) / 2;

				if (es_batch_try(b, start, mid))
				{
					start = mid;
					known = false;
				}
				else
				{
					end = mid;
					known = true;
				}
			}
			if (known || !es_batch_try(b, start, end))
			{
				*failed = start;
				return start;
			}
			/* it passes alone: it failed together with later events */
			start = end;
		}
		return n;
	}
}

/* Take the next event of the feed into the chunk. */
static void
es_batch_add(EsBatch *b, TupleTableSlot *slot, TupleDesc eventdesc)
{
	MemoryContext old;
	HeapTuple	tuple;

	if (b->n == b->allocated)
	{
		b->allocated *= 2;
		b->events = repalloc(b->events, sizeof(Datum) * b->allocated);
		b->positions = repalloc(b->positions, sizeof(int64) * b->allocated);
	}
	old = MemoryContextSwitchTo(b->events_cxt);
	slot_getsomeattrs(slot, ES_NUM_EVENT_COLS);
	tuple = heap_form_tuple(eventdesc, slot->tts_values, slot->tts_isnull);
	b->positions[b->n] = DatumGetInt64(slot->tts_values[Anum_es_position - 1]);
	/* flattens toasted data and metadata: the handler may keep them */
	b->events[b->n] = HeapTupleGetDatum(tuple);
	b->n++;
	MemoryContextSwitchTo(old);
}

/*
 * One batch of projection name (see the file header).  max_count < 0: no
 * limit.  Returns the number of events applied.  Connects to SPI itself;
 * called in a transaction with an active snapshot.
 */
static int64
es_projection_batch(EsBatchKind kind, Oid caller, const char *name, int64 max_count,
					int naptime_ms)
{
	MemoryContext cxt;
	EsBatch		b;
	Datum		args[3];
	Oid			types[3];
	bool		isnull;
	HeapTuple	row;
	TupleDesc	rowdesc;
	Oid			handler;
	Oid			owner;
	text	   *prefix = NULL;
	ArrayType  *event_types = NULL;
	char	   *search_path;
	bool		had_error = false;
	int64		start;
	int64		pos;
	int64		applied = 0;
	int64		remaining = max_count < 0 ? PG_INT64_MAX : max_count;
	int			chunk;
	int			failed = -1;
	bool		exhausted = false;
	EsFeedRead *feed;
	TupleDesc	eventdesc;
	int			nestlevel;

	/* every statement below resolves names the same way, whoever calls */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cxt = CurrentMemoryContext; /* SPI's, freed at SPI_finish */

	/* the projection's row, locked */
	args[0] = CStringGetTextDatum(name);
	types[0] = TEXTOID;
	switch (kind)
	{
		case ES_BATCH_WORKER:
			es_exec(es_plan(&es_plan_lock_worker,
							"SELECT " ES_ROW_COLUMNS ", p.error_count > 0 OR p.retry_at IS NOT NULL, false"
							"  FROM eventstore.projection AS p"
							" WHERE p.name = $1 AND p.mode = 'async' FOR UPDATE SKIP LOCKED",
							1, types), args, NULL, SPI_OK_SELECT);
			break;
		case ES_BATCH_RUN:
			types[0] = REGROLEOID;
			types[1] = TEXTOID;
			args[0] = ObjectIdGetDatum(caller);
			args[1] = CStringGetTextDatum(name);
			es_exec(es_plan(&es_plan_lock_run,
							"SELECT " ES_ROW_COLUMNS ", false, p.mode = 'inline'"
							"  FROM eventstore_internal.projection_lock($1, $2) AS p",
							2, types), args, NULL, SPI_OK_SELECT);
			break;
		case ES_BATCH_HISTORY:
			es_exec(es_plan(&es_plan_row,
							"SELECT " ES_ROW_COLUMNS ", false, false"
							"  FROM eventstore.projection AS p WHERE p.name = $1",
							1, types), args, NULL, SPI_OK_SELECT);
			if (SPI_processed != 1)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("projection \"%s\" does not exist", name)));
			break;
	}
	if (SPI_processed != 1)
	{
		SPI_finish();
		AtEOXact_GUC(true, nestlevel);
		return 0;				/* the worker's: dropped, or someone runs it now */
	}
	row = SPI_tuptable->vals[0];
	rowdesc = SPI_tuptable->tupdesc;
	if (DatumGetBool(SPI_getbinval(row, rowdesc, 7, &isnull)))
	{
		SPI_finish();
		AtEOXact_GUC(true, nestlevel);
		return 0;				/* inline projections are always up to date */
	}
	handler = DatumGetObjectId(SPI_getbinval(row, rowdesc, 1, &isnull));
	owner = DatumGetObjectId(SPI_getbinval(row, rowdesc, 2, &isnull));
	{
		Datum		d = SPI_getbinval(row, rowdesc, 3, &isnull);

		if (!isnull)
			prefix = DatumGetTextPCopy(d);
		d = SPI_getbinval(row, rowdesc, 4, &isnull);
		if (!isnull)
			event_types = DatumGetArrayTypePCopy(d);
	}
	search_path = SPI_getvalue(row, rowdesc, 5);
	had_error = DatumGetBool(SPI_getbinval(row, rowdesc, 6, &isnull));

	/*
	 * The checkpoint, locked: a REPEATABLE READ runner whose snapshot
	 * predates another runner's checkpoint fails here (40001) instead of
	 * applying events again.
	 */
	types[0] = TEXTOID;
	args[0] = CStringGetTextDatum(name);
	es_exec(es_plan(&es_plan_checkpoint,
					"SELECT c.position FROM eventstore.checkpoint AS c WHERE c.projection = $1 FOR UPDATE",
					1, types), args, NULL, SPI_OK_SELECT);
	start = 0;
	if (SPI_processed == 1)
		start = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pos = start;

	memset(&b, 0, sizeof(b));
	b.name = name;
	EsHandlerInit(&b.handler, handler, owner, search_path ? search_path : "", cxt);
	b.events_cxt = AllocSetContextCreate(cxt, "eventstore batch events", ALLOCSET_DEFAULT_SIZES);
	b.call_cxt = AllocSetContextCreate(cxt, "eventstore handler call", ALLOCSET_DEFAULT_SIZES);
	b.error_cxt = cxt;
	b.event_type = EsGetCatalog()->event_type;
	get_typlenbyvalalign(b.event_type, &b.typlen, &b.typbyval, &b.typalign);
	chunk = (max_count < 0 || max_count > ES_MAX_CHUNK) ? ES_MAX_CHUNK : (int) max_count;
	b.allocated = Min(Max(chunk, 1), 1024);
	b.events = palloc(sizeof(Datum) * b.allocated);
	b.positions = palloc(sizeof(int64) * b.allocated);
	eventdesc = lookup_rowtype_tupdesc_copy(b.event_type, -1);

	feed = EsFeedOpen(start, prefix, event_types, kind == ES_BATCH_HISTORY);
	while (remaining > 0)
	{
		int			want = (int) Min(remaining, (int64) chunk);
		int			done;
		TupleTableSlot *slot = NULL;

		MemoryContextReset(b.events_cxt);
		b.n = 0;
		while (b.n < want && (slot = EsFeedNext(feed)) != NULL)
			es_batch_add(&b, slot, eventdesc);
		if (b.n < want)
			exhausted = true;
		if (b.n == 0)
			break;
		done = es_batch_apply_narrowed(&b, kind == ES_BATCH_WORKER, &failed);
		applied += done;
		if (done > 0)
			pos = b.positions[done - 1];
		remaining -= b.n;
		if (failed >= 0 || exhausted)
			break;
	}

	/*
	 * A batch that was not full applied every matching event up to the
	 * horizon: move past the events the filter skips and the gaps, so lag
	 * reaches 0.
	 */
	if (failed < 0 && exhausted && kind != ES_BATCH_HISTORY && EsFeedHorizon(feed) > pos)
		pos = EsFeedHorizon(feed);
	EsFeedClose(feed);

	if (failed >= 0 && kind != ES_BATCH_WORKER)
	{
		/* run_projection, an inline history: fail, naming the event */
		ErrorData  *edata = b.error;
		char	   *where = psprintf("eventstore projection \"%s\", the event at position " INT64_FORMAT,
									 name, b.positions[failed]);

		edata->context = edata->context != NULL ? psprintf("%s\n%s", edata->context, where) : where;
		ReThrowError(edata);
	}

	if (pos != start)
	{
		Oid			stypes[2] = {TEXTOID, INT8OID};
		Datum		sargs[2];

		sargs[0] = CStringGetTextDatum(name);
		sargs[1] = Int64GetDatum(pos);
		es_exec(es_plan(&es_plan_save,
						"UPDATE eventstore.checkpoint AS c SET position = $2, updated_at = pg_catalog.now()"
						" WHERE c.projection = $1",
						2, stypes), sargs, NULL, SPI_OK_UPDATE);
	}
	if (failed >= 0)
	{
		/* the worker's: record the error and when to retry; stall there */
		Oid			ftypes[3] = {TEXTOID, TEXTOID, INT4OID};
		Datum		fargs[3];
		const char *message = b.error->message ? b.error->message : "unknown error";

		ereport(LOG,
				(errmsg("eventstore worker: projection \"%s\" stalls at position " INT64_FORMAT ": %s",
						name, b.positions[failed], message),
				 errdetail("The events before it are applied; it is retried with backoff.")));
		fargs[0] = CStringGetTextDatum(name);
		fargs[1] = CStringGetTextDatum(message);
		fargs[2] = Int32GetDatum(naptime_ms);
		es_exec(es_plan(&es_plan_failed,
						"SELECT eventstore_internal.worker_failed($1, $2, $3)",
						3, ftypes), fargs, NULL, SPI_OK_SELECT);
	}
	else if (had_error)
	{
		Oid			ctypes[1] = {TEXTOID};
		Datum		cargs[1];

		cargs[0] = CStringGetTextDatum(name);
		es_exec(es_plan(&es_plan_clear,
						"UPDATE eventstore.projection AS t SET last_error = NULL, error_count = 0, retry_at = NULL"
						" WHERE t.name = $1",
						1, ctypes), cargs, NULL, SPI_OK_UPDATE);
	}
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	return applied;
}

/*
 * The worker's batch of an async projection (worker.c), in its own
 * transaction: the row is skipped when locked (someone runs it now) or
 * no longer async; a failing handler is recorded with a retry time.
 */
int64
EsProjectionWorkerBatch(const char *name, int max_count, int naptime_ms)
{
	return es_projection_batch(ES_BATCH_WORKER, InvalidOid, name, max_count, naptime_ms);
}

PG_FUNCTION_INFO_V1(eventstore_worker_run);

/*
 * SQL: eventstore_internal.worker_run(name, max_count, naptime_ms) -- the
 * worker's batch, callable for tests; only by the extension's owner.
 */
Datum
eventstore_worker_run(PG_FUNCTION_ARGS)
{
	EsRequireExtensionOwner("worker_run");
	PG_RETURN_INT64(EsProjectionWorkerBatch(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											PG_GETARG_INT32(1), PG_GETARG_INT32(2)));
}

PG_FUNCTION_INFO_V1(eventstore_run_projection);

/*
 * SQL: eventstore_internal.run_projection(caller, name, max_count), the
 * twin of eventstore.run_projection (caller.c): one batch in the caller's
 * transaction; max_count NULL is no limit.  A failing handler fails it.
 */
Datum
eventstore_run_projection(PG_FUNCTION_ARGS)
{
	int64		max_count = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2);

	EsRequireExtensionOwner("run_projection");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("caller must not be NULL")));
	if (!PG_ARGISNULL(2) && max_count < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("projection name must not be NULL")));
	PG_RETURN_INT64(es_projection_batch(ES_BATCH_RUN, PG_GETARG_OID(0),
										text_to_cstring(PG_GETARG_TEXT_PP(1)), max_count, 0));
}

PG_FUNCTION_INFO_V1(eventstore_apply_history);

/*
 * SQL: eventstore_internal.apply_history(name) -- an inline projection's
 * history, at create_projection and reset_projection, while appends are
 * locked out: every matching event after its checkpoint, including this
 * transaction's own.  A failing handler fails it.
 */
Datum
eventstore_apply_history(PG_FUNCTION_ARGS)
{
	EsRequireExtensionOwner("apply_history");
	PG_RETURN_INT64(es_projection_batch(ES_BATCH_HISTORY, InvalidOid,
										text_to_cstring(PG_GETARG_TEXT_PP(0)), -1, 0));
}
