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
 * reading itself.  So the tuplestores live in a backend-lifetime context
 * whose first block (kept by a reset) is sized to the pages this backend
 * reads, up to ES_RESULT_KEEP_MAX.
 *
 * The context is reset whenever the last query holding a result ends
 * (a reset callback on each caller's query memory counts them), normally
 * or by an error: so nothing leaks, and only the kept block stays.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "eventstore.h"

/* The largest block kept between queries (further capped by work_mem). */
#define ES_RESULT_KEEP_MAX	((Size) 4 * 1024 * 1024)

static MemoryContext es_result_cxt = NULL;
static Size es_result_keep = 0;	/* size of its kept first block */
static int	es_result_live = 0; /* queries whose results may be in it */

/* (Re)create the context, its first block of the given size. */
static void
es_result_context_create(Size keep)
{
	if (es_result_cxt != NULL)
		MemoryContextDelete(es_result_cxt);
	es_result_cxt = AllocSetContextCreate(TopMemoryContext,
										  "eventstore results",
										  keep,
										  Min(keep, ALLOCSET_DEFAULT_INITSIZE),
										  ALLOCSET_DEFAULT_MAXSIZE);
	es_result_keep = keep;
}

/*
 * A query that held results ends.  When it was the last one, free what
 * the results used; if they needed more than the kept block, keep a
 * block of that size from now on (up to the cap).
 */
static void
es_result_query_done(void *arg pg_attribute_unused())
{
	Size		used;
	Size		cap;

	Assert(es_result_live > 0);
	if (--es_result_live > 0)
		return;
	used = MemoryContextMemAllocated(es_result_cxt, false);
	cap = Min(ES_RESULT_KEEP_MAX, (Size) work_mem * 1024);
	if (used > es_result_keep && es_result_keep < cap)
		es_result_context_create(Min(MAXALIGN(used), cap));
	else
		MemoryContextReset(es_result_cxt);
}

/*
 * Set up the result of a set-returning function of eventstore.event rows
 * (InitMaterializedSRF, with the tuplestore in the kept context).
 */
void
EsInitEventResult(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext per_query;
	MemoryContext old;
	MemoryContextCallback *cb;
	TupleDesc	desc;

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
	cb = palloc(sizeof(MemoryContextCallback));
	MemoryContextSwitchTo(old);

	if (es_result_cxt == NULL)
		es_result_context_create(ALLOCSET_DEFAULT_INITSIZE);

	/* count the query before anything can be put in the context */
	cb->func = es_result_query_done;
	cb->arg = NULL;
	MemoryContextRegisterResetCallback(per_query, cb);
	es_result_live++;

	old = MemoryContextSwitchTo(es_result_cxt);
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
