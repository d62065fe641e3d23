/*-------------------------------------------------------------------------
 *
 * read.c
 *	  Stream reads: eventstore.read_stream and eventstore.stream_version,
 *	  by direct scans of the (stream, stream_version) index.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "result.h"
#include "stream.h"

PG_FUNCTION_INFO_V1(eventstore_read_stream);

/* SQL: read_stream(stream, from_version, max_count, backward) */
Datum
eventstore_read_stream(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const EsCatalog *cat;
	text	   *stream;
	bool		backward = PG_ARGISNULL(3) ? false : PG_GETARG_BOOL(3);
	int64		limit = PG_ARGISNULL(2) ? PG_INT64_MAX : PG_GETARG_INT32(2);
	Relation	heap;
	Relation	index;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	int			nkeys = 1;
	int64		count = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream must not be NULL")));
	stream = PG_GETARG_TEXT_PP(0);
	EsCheckStreamName(stream);
	if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_version must be at least 1"),
				 errdetail("Stream versions start at 1.")));
	if (limit < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));

	EsInitEventResult(fcinfo);
	if (limit == 0)
		return (Datum) 0;

	cat = EsGetCatalog();
	heap = table_open(cat->events, AccessShareLock);
	index = index_open(cat->stream_idx, AccessShareLock);
	slot = table_slot_create(heap, NULL);

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   C_COLLATION_OID, F_TEXTEQ, PointerGetDatum(stream));
	if (!PG_ARGISNULL(1))
	{
		if (backward)
			ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE,
						PG_GETARG_DATUM(1));
		else
			ScanKeyInit(&keys[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE,
						PG_GETARG_DATUM(1));
		nkeys = 2;
	}

	scan = index_beginscan(heap, index, GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (count < limit &&
		   index_getnext_slot(scan, backward ? BackwardScanDirection : ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		EsPutEvent(rsinfo, slot);
		count++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(eventstore_stream_version);

/* SQL: stream_version(stream) -- 0 for a stream without events */
Datum
eventstore_stream_version(PG_FUNCTION_ARGS)
{
	text	   *stream;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream must not be NULL")));
	stream = PG_GETARG_TEXT_PP(0);
	EsCheckStreamName(stream);
	PG_RETURN_INT64(EsCurrentVersion(EsGetCatalog(), stream, GetActiveSnapshot()));
}
