/*-------------------------------------------------------------------------
 *
 * feed.c
 *	  The gap-safe global feed: eventstore.read_all, read_category,
 *	  head_position and stream_hash.
 *
 * A global read first computes the safe horizon (registry.c), then takes
 * a fresh snapshot, then returns events with after < position <= horizon
 * in position order.  It always reads with that fresh snapshot, whatever
 * the caller's isolation level: the transaction snapshot of a REPEATABLE
 * READ reader may predate commits below the horizon, and events are
 * immutable, so a newer snapshot only ever shows more of the log.
 *
 * Filters are answered from indexes.  Each "source" is one index range
 * ordered by position -- the primary key, one category of the
 * (category, position) index, or one type of the (event_type, position)
 * index -- and several sources are merged by position.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "catalog.h"
#include "eventstore.h"
#include "feed.h"
#include "registry.h"
#include "result.h"
#include "stream.h"

/* One index range, ordered by position, and its current row. */
typedef struct EsSource
{
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		position;		/* of the current row */
	bool		valid;			/* slot holds the current row */
} EsSource;

/* Everything a global read needs (feed.h: opaque to other files). */
struct EsFeedRead
{
	Relation	heap;
	Snapshot	snapshot;
	int64		after;			/* exclusive lower bound */
	int64		horizon;		/* inclusive upper bound */
	List	   *sources;		/* of EsSource * */
	List	   *indexes;		/* Relations to close */
	/* row filters */
	text	   *prefix;
	int			ntypes;
	text	  **types;			/* NULL: no type filter */
	int			group_size;		/* 0: no consumer group */
	int			group_member;
	/* EsFeedNext: sources advanced, and the one whose row it returned */
	bool		started;
	EsSource   *returned;
};

/*
 * FNV-1a, 64 bits, over the bytes of the stream name: a hash that anyone
 * can recompute in any language, stable across platforms and versions.
 */
static uint64
es_stream_hash(const char *s, int len)
{
	uint64		h = UINT64CONST(0xcbf29ce484222325);

	for (int i = 0; i < len; i++)
	{
		h ^= (unsigned char) s[i];
		h *= UINT64CONST(0x100000001b3);
	}
	return h;
}

/* Does the row in slot pass the read's filters? */
static bool
es_row_matches(EsFeedRead *rd, TupleTableSlot *slot)
{
	bool		isnull;

	if (rd->prefix != NULL || rd->group_size > 0)
	{
		text	   *stream = DatumGetTextPP(slot_getattr(slot, Anum_es_stream, &isnull));
		const char *s = VARDATA_ANY(stream);
		int			len = VARSIZE_ANY_EXHDR(stream);

		if (rd->prefix != NULL)
		{
			int			plen = VARSIZE_ANY_EXHDR(rd->prefix);

			if (len < plen || memcmp(s, VARDATA_ANY(rd->prefix), plen) != 0)
				return false;
		}
		if (rd->group_size > 0 &&
			es_stream_hash(s, len) % (uint64) rd->group_size != (uint64) rd->group_member)
			return false;
	}

	if (rd->types != NULL)
	{
		text	   *type = DatumGetTextPP(slot_getattr(slot, Anum_es_event_type, &isnull));
		Size		len = VARSIZE_ANY_EXHDR(type);
		bool		found = false;

		for (int i = 0; i < rd->ntypes && !found; i++)
			found = VARSIZE_ANY_EXHDR(rd->types[i]) == len &&
				memcmp(VARDATA_ANY(rd->types[i]), VARDATA_ANY(type), len) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Move a source to its next matching row, or mark it exhausted. */
static void
es_source_advance(EsFeedRead *rd, EsSource *src)
{
	src->valid = false;
	while (index_getnext_slot(src->scan, ForwardScanDirection, src->slot))
	{
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (!es_row_matches(rd, src->slot))
			continue;
		src->position = DatumGetInt64(slot_getattr(src->slot, Anum_es_position, &isnull));
		src->valid = true;
		return;
	}
}

/*
 * Add a source: an index whose last key column is global_position, with
 * an optional equality key (text) on its first column.
 */
static void
es_add_source(EsFeedRead *rd, Oid indexoid, text *leading)
{
	Relation	index = index_open(indexoid, AccessShareLock);
	EsSource   *src = palloc0(sizeof(EsSource));
	ScanKeyData keys[3];
	int			nkeys = 0;
	AttrNumber	posatt = 1;

	if (leading != NULL)
	{
		ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTEqualStrategyNumber,
							   InvalidOid, index->rd_indcollation[0],
							   F_TEXTEQ, PointerGetDatum(leading));
		posatt = 2;
	}
	ScanKeyInit(&keys[nkeys++], posatt, BTGreaterStrategyNumber, F_INT8GT,
				Int64GetDatum(rd->after));
	ScanKeyInit(&keys[nkeys++], posatt, BTLessEqualStrategyNumber, F_INT8LE,
				Int64GetDatum(rd->horizon));

	src->slot = table_slot_create(rd->heap, NULL);
	src->scan = index_beginscan(rd->heap, index, rd->snapshot, nkeys, 0);
	index_rescan(src->scan, keys, nkeys, NULL, 0);
	rd->indexes = lappend(rd->indexes, index);
	rd->sources = lappend(rd->sources, src);
}

/*
 * Add one source per category that starts with prefix (a prefix without
 * '-': every stream starting with it has such a category).  Categories
 * are found by skipping through the category index, one probe each.
 */
static void
es_add_category_sources(EsFeedRead *rd, Oid indexoid, text *prefix)
{
	Relation	index = index_open(indexoid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rd->heap, NULL);
	Size		plen = VARSIZE_ANY_EXHDR(prefix);
	text	   *low = prefix;
	StrategyNumber strategy = BTGreaterEqualStrategyNumber;
	RegProcedure proc = F_TEXT_GE;

	for (;;)
	{
		ScanKeyData key;
		IndexScanDesc scan;
		text	   *cat = NULL;

		ScanKeyEntryInitialize(&key, 0, 1, strategy, InvalidOid,
							   index->rd_indcollation[0], proc,
							   PointerGetDatum(low));
		scan = index_beginscan(rd->heap, index, rd->snapshot, 1, 0);
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			text	   *stream = DatumGetTextPP(slot_getattr(slot, Anum_es_stream, &isnull));

			cat = EsCategoryOf(stream);
		}
		index_endscan(scan);
		if (cat == NULL || VARSIZE_ANY_EXHDR(cat) < plen ||
			memcmp(VARDATA_ANY(cat), VARDATA_ANY(prefix), plen) != 0)
			break;
		es_add_source(rd, indexoid, cat);
		low = cat;
		strategy = BTGreaterStrategyNumber;
		proc = F_TEXT_GT;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
}

/*
 * The next row of the read in position order, or NULL at the end.  The
 * number of sources is small (types named, categories matched), so a
 * linear pick of the minimum is enough.  The slot returned stays valid
 * until the next call.
 */
static TupleTableSlot *
es_feed_next(EsFeedRead *rd)
{
	ListCell   *lc;
	EsSource   *best = NULL;

	if (!rd->started)
	{
		foreach(lc, rd->sources)
			es_source_advance(rd, (EsSource *) lfirst(lc));
		rd->started = true;
	}
	else if (rd->returned != NULL)
		es_source_advance(rd, rd->returned);

	foreach(lc, rd->sources)
	{
		EsSource   *src = (EsSource *) lfirst(lc);

		if (src->valid && (best == NULL || src->position < best->position))
			best = src;
	}
	rd->returned = best;
	return best != NULL ? best->slot : NULL;
}

/* Merge the sources by position into the SRF's tuplestore, at most limit rows. */
static void
es_merge_sources(EsFeedRead *rd, ReturnSetInfo *rsinfo, int64 limit)
{
	int64		count = 0;
	TupleTableSlot *slot;

	while (count < limit && (slot = es_feed_next(rd)) != NULL)
	{
		EsPutEvent(rsinfo, slot);
		count++;
	}
}

/* Start a global read: horizon first, then the snapshot (see header). */
static void
es_feed_begin(EsFeedRead *rd, const EsCatalog *cat, int64 after)
{
	memset(rd, 0, sizeof(*rd));
	rd->after = after;
	rd->horizon = EsSafeHorizon(cat);
	rd->snapshot = RegisterSnapshot(GetLatestSnapshot());
	rd->heap = table_open(cat->events, AccessShareLock);
}

/*
 * Add the sources of a read_all filter (prefix NULL: any stream; types
 * parsed into rd already, NULL: any type).
 */
static void
es_feed_add_filter_sources(EsFeedRead *rd, const EsCatalog *cat, text *prefix)
{
	if (prefix != NULL)
	{
		const char *p = VARDATA_ANY(prefix);
		const char *dash = memchr(p, '-', VARSIZE_ANY_EXHDR(prefix));

		rd->prefix = prefix;
		if (dash != NULL)
			es_add_source(rd, cat->category_idx,
						  cstring_to_text_with_len(p, dash - p));
		else
			es_add_category_sources(rd, cat->category_idx, prefix);
	}
	else if (rd->types != NULL)
	{
		for (int i = 0; i < rd->ntypes; i++)
			es_add_source(rd, cat->type_idx, rd->types[i]);
		rd->types = NULL;		/* the sources are the filter */
	}
	else
		es_add_source(rd, cat->pkey_idx, NULL);
}

/* Close every scan, index and the heap; release the snapshot. */
static void
es_feed_end(EsFeedRead *rd)
{
	ListCell   *lc;

	foreach(lc, rd->sources)
	{
		EsSource   *src = (EsSource *) lfirst(lc);

		index_endscan(src->scan);
		ExecDropSingleTupleTableSlot(src->slot);
	}
	foreach(lc, rd->indexes)
		index_close((Relation) lfirst(lc), AccessShareLock);
	table_close(rd->heap, AccessShareLock);
	UnregisterSnapshot(rd->snapshot);
}

/* Validate after_position and max_count; return the row limit. */
static int64
es_feed_args(FunctionCallInfo fcinfo, int after_arg, int count_arg, int64 *after)
{
	*after = PG_ARGISNULL(after_arg) ? 0 : PG_GETARG_INT64(after_arg);
	if (*after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_position must not be negative")));
	if (PG_ARGISNULL(count_arg))
		return PG_INT64_MAX;
	if (PG_GETARG_INT32(count_arg) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must not be negative")));
	return PG_GETARG_INT32(count_arg);
}

/* Deconstruct event_types into distinct non-NULL texts. */
static void
es_parse_types(ArrayType *arr, EsFeedRead *rd)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_types must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	rd->types = palloc(sizeof(text *) * Max(n, 1));
	rd->ntypes = 0;
	for (int i = 0; i < n; i++)
	{
		text	   *t;
		bool		dup = false;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("event_types must not contain NULL")));
		t = DatumGetTextPP(elems[i]);
		for (int j = 0; j < rd->ntypes && !dup; j++)
			dup = VARSIZE_ANY_EXHDR(rd->types[j]) == VARSIZE_ANY_EXHDR(t) &&
				memcmp(VARDATA_ANY(rd->types[j]), VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) == 0;
		if (!dup)
			rd->types[rd->ntypes++] = t;
	}
}

PG_FUNCTION_INFO_V1(eventstore_read_all);

/* SQL: read_all(after_position, max_count, stream_prefix, event_types) */
Datum
eventstore_read_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const EsCatalog *cat;
	EsFeedRead	rd;
	int64		after;
	int64		limit = es_feed_args(fcinfo, 0, 1, &after);
	text	   *prefix = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	ArrayType  *types = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);

	if (prefix != NULL && VARSIZE_ANY_EXHDR(prefix) == 0)
		prefix = NULL;			/* every name starts with "" */
	if (prefix != NULL && VARSIZE_ANY_EXHDR(prefix) > ES_MAX_STREAM_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream_prefix is longer than a stream name can be")));

	EsInitEventResult(fcinfo);
	cat = EsGetCatalog();
	es_feed_begin(&rd, cat, after);
	if (types != NULL)
		es_parse_types(types, &rd);

	if (limit == 0 || rd.horizon <= after || (rd.types != NULL && rd.ntypes == 0))
		;						/* nothing to read */
	else
		es_feed_add_filter_sources(&rd, cat, prefix);

	es_merge_sources(&rd, rsinfo, limit);
	es_feed_end(&rd);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(eventstore_read_category);

/* SQL: read_category(category, after_position, max_count, member, size) */
Datum
eventstore_read_category(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const EsCatalog *cat;
	EsFeedRead	rd;
	text	   *category;
	int			len;
	int64		after;
	int64		limit = es_feed_args(fcinfo, 1, 2, &after);
	int			member = 0;
	int			size = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("category must not be NULL")));
	category = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(category);
	if (len < 1 || len > ES_MAX_STREAM_NAME ||
		memchr(VARDATA_ANY(category), '-', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid category name"),
				 errdetail("A category is the part of a stream name before its first \"-\": 1 to %d bytes without \"-\".",
						   ES_MAX_STREAM_NAME)));

	if (PG_ARGISNULL(3) != PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("consumer_group_member and consumer_group_size must be given together")));
	if (!PG_ARGISNULL(4))
	{
		member = PG_GETARG_INT32(3);
		size = PG_GETARG_INT32(4);
		if (size < 1 || member < 0 || member >= size)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid consumer group member %d of size %d", member, size),
					 errdetail("The size must be at least 1 and the member between 0 and size - 1.")));
	}

	EsInitEventResult(fcinfo);
	cat = EsGetCatalog();
	es_feed_begin(&rd, cat, after);
	rd.group_size = size;
	rd.group_member = member;
	if (limit > 0 && rd.horizon > after)
	{
		es_add_source(&rd, cat->category_idx, category);
		es_merge_sources(&rd, rsinfo, limit);
	}
	es_feed_end(&rd);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(eventstore_head_position);

/* SQL: head_position() -- the safe horizon of the global feed */
Datum
eventstore_head_position(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(EsSafeHorizon(EsGetCatalog()));
}

PG_FUNCTION_INFO_V1(eventstore_consumer_group_member);

/*
 * SQL: consumer_group_member(stream, group_size) -- the member of a
 * consumer group of that size that receives the stream.
 */
Datum
eventstore_consumer_group_member(PG_FUNCTION_ARGS)
{
	text	   *stream = PG_GETARG_TEXT_PP(0);
	int32		size = PG_GETARG_INT32(1);

	if (size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_size must be at least 1")));
	PG_RETURN_INT32((int32) (es_stream_hash(VARDATA_ANY(stream),
											VARSIZE_ANY_EXHDR(stream)) % (uint64) size));
}

/*
 * Open a read of the events after position after that match a
 * projection's filter (prefix NULL: any stream; types NULL: any type), in
 * position order, for EsFeedNext.  Gap-safe: up to the safe horizon, with
 * a snapshot taken after it (see the file header) -- unless whole_table,
 * for an inline projection's history, read while appends are locked
 * out: every row the caller's active snapshot shows, including what its
 * own transaction appended (which the horizon does not pass before it
 * commits).  In the caller's memory context; EsFeedClose ends it.
 */
EsFeedRead *
EsFeedOpen(int64 after, text *prefix, ArrayType *types, bool whole_table)
{
	const EsCatalog *cat = EsGetCatalog();
	EsFeedRead *rd = palloc0(sizeof(EsFeedRead));

	rd->after = after;
	if (whole_table)
	{
		rd->horizon = PG_INT64_MAX;
		rd->snapshot = RegisterSnapshot(GetActiveSnapshot());
	}
	else
	{
		rd->horizon = EsSafeHorizon(cat);
		rd->snapshot = RegisterSnapshot(GetLatestSnapshot());
	}
	rd->heap = table_open(cat->events, AccessShareLock);
	if (prefix != NULL && VARSIZE_ANY_EXHDR(prefix) == 0)
		prefix = NULL;
	if (types != NULL)
		es_parse_types(types, rd);
	if (rd->horizon > after && (rd->types == NULL || rd->ntypes > 0))
		es_feed_add_filter_sources(rd, cat, prefix);
	return rd;
}

/* The next event of the read (a slot of eventstore.events), or NULL. */
TupleTableSlot *
EsFeedNext(EsFeedRead *rd)
{
	return es_feed_next(rd);
}

/*
 * The read's upper bound: once EsFeedNext returned NULL, every matching
 * event up to it was returned.
 */
int64
EsFeedHorizon(EsFeedRead *rd)
{
	return rd->horizon;
}

/* End a read of EsFeedOpen. */
void
EsFeedClose(EsFeedRead *rd)
{
	es_feed_end(rd);
	pfree(rd);
}
