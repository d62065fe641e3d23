/*-------------------------------------------------------------------------
 *
 * result.c
 *	  The result sets of the event-returning functions (read_stream,
 *	  read_all, read_category): a tuplestore whose memory is kept by the
 *	  backend from one call to the next.
 *
 * A set-returning function in FROM hands the executor a tuplestore with
 * the whole page.  Made, as usual, in the query's memory, it is freed at
 * the end of every query; with pages of a few hundred kB, glibc gives that
 * memory back to the kernel each time and the next page faults it in
 * again, which costs a consumer paging through the log more than the
 * reading itself.  So each result gets a buffer: a memory context whose
 * first block (kept by a reset) is sized to the pages this backend reads,
 * up to min(work_mem, eventstore.result_buffer_size).
 *
 * A buffer belongs to one query: a reset callback on the caller's query
 * memory resets it when that query ends, normally or by an error -- also
 * a page that an error left without tuplestore_end -- and puts it back on
 * a short list of idle buffers for the next call.  The callback never
 * allocates or raises an error; a buffer that needed more than its kept
 * block is made anew at its next use.
 *
 * Kept memory is the backend's, not the query's, so it is bounded: the
 * idle buffers together keep at most eventstore.result_buffer_size (0:
 * results live in the query's memory, as any set-returning function's),
 * and idle buffers are freed at the end of the first transaction that
 * ends after they sat unused for eventstore.result_buffer_idle_timeout.
 * A consumer paging through the log reuses its buffer within
 * milliseconds; a pooled connection that stopped reading gives the
 * memory back with its next transaction.  (A backend that runs nothing
 * at all runs no code to free it either: that is what the size bounds.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "eventstore.h"
#include "result.h"

/* Idle buffers kept for the next calls (more are freed). */
#define ES_RESULT_IDLE_MAX	2

/* eventstore.result_buffer_size (kB) and ..._idle_timeout (ms) */
static int	es_result_buffer_size = 4096;
static int	es_result_buffer_idle_timeout = 10000;

typedef struct EsResultBuffer
{
	MemoryContext cxt;			/* holds one query's tuplestore */
	Size		keep;			/* size of its kept first block */
	Size		wanted;			/* what the last query used */
	TimestampTz idle_since;		/* when its last query ended */
	MemoryContextCallback done; /* on the query's memory */
	struct EsResultBuffer *next;	/* in the idle list, newest first */
} EsResultBuffer;

static EsResultBuffer *es_idle_buffers = NULL;
static int	es_idle_count = 0;
static Size es_idle_bytes = 0;	/* sum of the idle buffers' keep */

/* What the idle buffers may keep in all, in bytes. */
static Size
es_result_keep_limit(void)
{
	return (Size) es_result_buffer_size * 1024;
}

/* Free a buffer that is on no list. */
static void
es_result_free(EsResultBuffer *buf)
{
	MemoryContextDelete(buf->cxt);
	pfree(buf);
}

/* A context whose first block of keep bytes survives resets. */
static MemoryContext
es_result_context(Size keep)
{
	return AllocSetContextCreate(TopMemoryContext, "eventstore result",
								 keep, Min(keep, ALLOCSET_DEFAULT_INITSIZE),
								 ALLOCSET_DEFAULT_MAXSIZE);
}

/*
 * The query that held the buffer ended: empty it (what it held is
 * unreachable now) and keep it for the next call, or free it.
 */
static void
es_result_query_done(void *arg)
{
	EsResultBuffer *buf = (EsResultBuffer *) arg;

	buf->wanted = MemoryContextMemAllocated(buf->cxt, false);
	if (es_idle_count >= ES_RESULT_IDLE_MAX ||
		es_idle_bytes + buf->keep > es_result_keep_limit())
	{
		es_result_free(buf);
		return;
	}
	MemoryContextReset(buf->cxt);
	buf->idle_since = GetCurrentTimestamp();
	buf->next = es_idle_buffers;
	es_idle_buffers = buf;
	es_idle_count++;
	es_idle_bytes += buf->keep;
}

/*
 * Transaction end: free the idle buffers that have not been used for
 * eventstore.result_buffer_idle_timeout, and all of them if the idle
 * buffers keep more than eventstore.result_buffer_size (lowered since).
 * The list is newest first, so the old ones are its tail.
 */
static void
es_result_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	EsResultBuffer **link = &es_idle_buffers;
	TimestampTz now;

	if (es_idle_buffers == NULL)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (es_idle_bytes <= es_result_keep_limit())
	{
		if (es_result_buffer_idle_timeout <= 0)
			return;
		now = GetCurrentTimestamp();
		while (*link != NULL &&
			   !TimestampDifferenceExceeds((*link)->idle_since, now,
										   es_result_buffer_idle_timeout))
			link = &(*link)->next;
	}
	while (*link != NULL)
	{
		EsResultBuffer *buf = *link;

		*link = buf->next;
		es_idle_count--;
		es_idle_bytes -= buf->keep;
		es_result_free(buf);
	}
}

/*
 * A buffer for a result of the current query: an idle one, made anew
 * with a bigger kept block if its last query needed more, or a new one.
 */
static EsResultBuffer *
es_result_buffer(MemoryContext per_query)
{
	Size		cap = Min(es_result_keep_limit(), (Size) work_mem * 1024);
	EsResultBuffer *buf = es_idle_buffers;

	if (buf != NULL)
	{
		MemoryContext bigger = NULL;
		Size		keep = buf->keep;

		/*
		 * Grown by half at least: what a query used counts the blocks of
		 * chunks too big for the kept block (the tuplestore's pointer
		 * array), which it would never hold anyway.  The new context is
		 * made first: an error changes nothing.
		 */
		if (buf->wanted > buf->keep + buf->keep / 2 && buf->keep < cap)
		{
			keep = Min(MAXALIGN(buf->wanted), cap);
			bigger = es_result_context(keep);
		}
		es_idle_buffers = buf->next;
		es_idle_count--;
		es_idle_bytes -= buf->keep;
		if (bigger != NULL)
		{
			MemoryContextDelete(buf->cxt);
			buf->cxt = bigger;
			buf->keep = keep;
		}
	}
	else
	{
		MemoryContext cxt = es_result_context(ALLOCSET_DEFAULT_INITSIZE);

		buf = MemoryContextAllocExtended(TopMemoryContext, sizeof(EsResultBuffer),
										 MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
		if (buf == NULL)
		{
			MemoryContextDelete(cxt);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		}
		buf->cxt = cxt;
		buf->keep = ALLOCSET_DEFAULT_INITSIZE;
	}
	buf->wanted = 0;
	buf->next = NULL;
	buf->done.func = es_result_query_done;
	buf->done.arg = buf;
	MemoryContextRegisterResetCallback(per_query, &buf->done);
	return buf;
}

/*
 * Define the settings of the result buffers and register the callback
 * that gives idle ones back (from _PG_init).
 */
void
EsResultInit(void)
{
	DefineCustomIntVariable("eventstore.result_buffer_size",
							"Memory a backend keeps between queries for the results of eventstore's read functions.",
							"Saves a consumer paging through the log from having the memory of every page "
							"freed and faulted in again; further capped by work_mem.  0 keeps nothing.",
							&es_result_buffer_size,
							4096,
							0,
							MAX_KILOBYTES,
							PGC_USERSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventstore.result_buffer_idle_timeout",
							"Frees the kept result memory of a backend that has not read for this long.",
							"Checked when a transaction ends.  0 keeps it until the backend exits.",
							&es_result_buffer_idle_timeout,
							10000,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	RegisterXactCallback(es_result_xact_callback, NULL);
}

/*
 * Set up the result of a set-returning function of eventstore.event rows
 * (InitMaterializedSRF, with the tuplestore in a result buffer).
 */
void
EsInitEventResult(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext per_query;
	MemoryContext old;
	TupleDesc	desc;
	EsResultBuffer *buf;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	per_query = rsinfo->econtext->ecxt_per_query_memory;
	old = MemoryContextSwitchTo(per_query);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function returning a set of events must return a row type")));
	desc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(old);

	/* Nothing kept between queries: the result lives in the query's memory. */
	if (es_result_keep_limit() == 0)
		old = MemoryContextSwitchTo(per_query);
	else
	{
		buf = es_result_buffer(per_query);
		old = MemoryContextSwitchTo(buf->cxt);
	}
	rsinfo->setResult =
		tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
							  false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = desc;
}

/*
 * Append the event in slot to the result.  The columns of
 * eventstore.events are exactly those of eventstore.event, so the stored
 * tuple is copied as it is, without deforming and re-forming it.
 */
void
EsPutEvent(ReturnSetInfo *rsinfo, TupleTableSlot *slot)
{
	bool		should_free;
	HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);

	if (HeapTupleHeaderGetNatts(tuple->t_data) == ES_NUM_EVENT_COLS)
		tuplestore_puttuple(rsinfo->setResult, tuple);
	else
	{
		slot_getsomeattrs(slot, ES_NUM_EVENT_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 slot->tts_values, slot->tts_isnull);
	}
	if (should_free)
		heap_freetuple(tuple);
}
