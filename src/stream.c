/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Streams: name rules, categories, the per-stream append lock, and
 *	  direct index lookups of a stream's version and of an event by id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "eventstore.h"
#include "stream.h"

/* locktag_field4 of stream locks: tells them apart in pg_locks */
#define ES_STREAM_LOCK_TAG	0x4553		/* "ES" */

/* Reject stream names outside 1..255 bytes with 22023. */
void
EsCheckStreamName(text *stream)
{
	int			len = VARSIZE_ANY_EXHDR(stream);

	if (len < 1 || len > ES_MAX_STREAM_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid stream name"),
				 errdetail("A stream name must be 1 to %d bytes long; this one has %d bytes.",
						   ES_MAX_STREAM_NAME, len)));
}

/*
 * Take the stream's append lock until the end of the transaction, so
 * appends to one stream are serialized while appends to other streams
 * never wait.  It is a heavyweight lock (deadlocks are detected, waits
 * are interruptible) on a 64-bit hash of the name: two names would share
 * a lock only on a hash collision, which costs a wait, never correctness.
 */
void
EsLockStream(text *stream)
{
	LOCKTAG		tag;
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(stream),
							VARSIZE_ANY_EXHDR(stream), 0);
	tag.locktag_field1 = MyDatabaseId;
	tag.locktag_field2 = (uint32) (h >> 32);
	tag.locktag_field3 = (uint32) h;
	tag.locktag_field4 = ES_STREAM_LOCK_TAG;
	tag.locktag_type = LOCKTAG_USERLOCK;
	tag.locktag_lockmethodid = DEFAULT_LOCKMETHOD;

	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * Current version of a stream as seen by snapshot: the highest
 * stream_version in the (stream, stream_version) index, 0 if none.
 */
int64
EsCurrentVersion(const EsCatalog *cat, text *stream, Snapshot snapshot)
{
	Relation	heap = table_open(cat->events, AccessShareLock);
	Relation	index = index_open(cat->stream_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	ScanKeyData key;
	int64		version = 0;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   C_COLLATION_OID, F_TEXTEQ, PointerGetDatum(stream));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;

		version = DatumGetInt64(slot_getattr(slot, Anum_es_version, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return version;
}

/*
 * Look an event up by id.  When found, return true and its stream (a
 * palloc'd copy), version and position.
 */
bool
EsFindEventById(const EsCatalog *cat, Datum event_id, Snapshot snapshot,
				text **stream, int64 *version, int64 *position)
{
	Relation	heap = table_open(cat->events, AccessShareLock);
	Relation	index = index_open(cat->event_id_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found = false;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, event_id);
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		found = true;
		*stream = DatumGetTextPCopy(slot_getattr(slot, Anum_es_stream, &isnull));
		*version = DatumGetInt64(slot_getattr(slot, Anum_es_version, &isnull));
		*position = DatumGetInt64(slot_getattr(slot, Anum_es_position, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return found;
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

PG_FUNCTION_INFO_V1(eventstore_category);

/* SQL: category(stream) -- the part of the name before the first '-'. */
Datum
eventstore_category(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(EsCategoryOf(PG_GETARG_TEXT_PP(0)));
}
