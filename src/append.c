/*-------------------------------------------------------------------------
 *
 * append.c
 *	  eventstore.append and eventstore.append_event: optimistic
 *	  concurrency, idempotent retries, and the direct insert path.
 *
 * An append validates its whole input first (nothing is written on bad
 * input), takes the stream's lock, reads the stream's version with a
 * fresh snapshot (correct at every isolation level, since the lock
 * guarantees no other appender of the stream is in flight), checks the
 * expectation, and inserts the rows through the executor's single-row
 * insert path, which maintains every index, constraint and trigger.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/time.h>

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "append.h"
#include "catalog.h"
#include "eventstore.h"
#include "jsonwrite.h"
#include "registry.h"
#include "stream.h"

/* eventstore.max_event_size: bytes of data + metadata per event */
int			es_max_event_size = 1024 * 1024;

/* eventstore.max_event_depth: nesting of arrays and objects per event */
int			es_max_event_depth = 100;

/* One event of an append, validated. */
typedef struct EsNewEvent
{
	Datum		id;				/* uuid */
	bool		id_given;		/* false: generated here */
	text	   *type;
	Jsonb	   *data;
	Jsonb	   *metadata;
} EsNewEvent;

/* Result of an append: the stream's new version, the last position. */
typedef struct EsAppendResult
{
	int64		version;
	int64		position;
} EsAppendResult;

/*
 * Define eventstore.max_event_size and eventstore.max_event_depth (from
 * _PG_init).
 */
void
EsAppendInit(void)
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
}

/* A new time-ordered UUID (version 7): keeps the event_id index compact. */
static Datum
es_new_uuid(void)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));
	struct timeval tv;
	uint64		ms;

	gettimeofday(&tv, NULL);
	ms = (uint64) tv.tv_sec * 1000 + tv.tv_usec / 1000;
	for (int i = 0; i < 6; i++)
		u->data[i] = (unsigned char) (ms >> (8 * (5 - i)));
	if (!pg_strong_random(&u->data[6], UUID_LEN - 6))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values for an event id")));
	u->data[6] = (u->data[6] & 0x0f) | 0x70;	/* version 7 */
	u->data[8] = (u->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return UUIDPGetDatum(u);
}

/* Reject a NULL argument with 22004, naming it. */
static void
es_check_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
}

/* Validate an event type: 1..255 bytes. */
static void
es_check_event_type(text *type, int index)
{
	int			len = VARSIZE_ANY_EXHDR(type);

	if (len < 1 || len > ES_MAX_EVENT_TYPE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event type in event %d", index),
				 errdetail("An event type must be 1 to %d bytes long; this one has %d bytes.",
						   ES_MAX_EVENT_TYPE, len)));
}

/*
 * Validate metadata (an object) and the event's size and depth, so that
 * every event stored can be delivered by every path: the read functions,
 * projections, the output plugin (whose line holds data and metadata as
 * JSON text) and poll (which parses that line back with ::jsonb).  Three
 * limits, each 54000: the stored size (eventstore.max_event_size); the
 * nesting depth (eventstore.max_event_depth), since parsing JSON back
 * recurses per level and would overflow the stack; and the size as JSON
 * text, at most ES_EVENT_TEXT_FACTOR times the size limit -- every string
 * fits that however it is escaped, only numbers with huge exponents (tiny
 * stored, huge as text) can exceed it.  The checks walk the stored form
 * without recursion (EsJsonbMeasure).
 */
static void
es_check_payload(Jsonb *data, Jsonb *metadata, int index)
{
	Size		size;
	Size		max_text = (Size) es_max_event_size * ES_EVENT_TEXT_FACTOR;
	Size		data_text;
	Size		metadata_text;

	if (JB_ROOT_IS_SCALAR(metadata) || !JB_ROOT_IS_OBJECT(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata of event %d must be a JSON object", index)));
	size = VARSIZE(data) + VARSIZE(metadata);
	if (size > (Size) es_max_event_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d is too large", index),
				 errdetail("Its data and metadata take %zu bytes; the limit is %d bytes.",
						   size, es_max_event_size),
				 errhint("Raise \"eventstore.max_event_size\" or store large payloads elsewhere.")));

	if (!EsJsonbMeasure(data, es_max_event_depth, max_text, &data_text) ||
		!EsJsonbMeasure(metadata, es_max_event_depth, max_text, &metadata_text))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d is nested too deeply", index),
				 errdetail("Its data or metadata nests arrays and objects more than %d levels deep.",
						   es_max_event_depth),
				 errhint("Flatten the payload, or raise \"eventstore.max_event_depth\" (at most %d).",
						 ES_MAX_EVENT_DEPTH_LIMIT)));
	if (data_text + metadata_text > max_text)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d is too large as JSON text", index),
				 errdetail("Its data and metadata can take more than %zu bytes as JSON text, %d times \"eventstore.max_event_size\".",
						   max_text, ES_EVENT_TEXT_FACTOR),
				 errhint("Numbers with large exponents are short when stored but long as text (1e100000 has 100,001 digits): store them as strings.")));
}

/* Convert a JSON string value to a text, for messages and for storage. */
static char *
es_jsonb_string(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Parse one element of the events array, an object with the keys type
 * (required), data, metadata and id.  Unknown keys are errors: a typo
 * must not silently drop a field.
 */
static void
es_parse_event(JsonbValue *elem, int index, EsNewEvent *ev)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	key;
	JsonbValue	val;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event %d must be a JSON object", index),
				 errdetail("Each event is an object {\"type\": ..., \"data\": ..., \"metadata\": {...}, \"id\": ...}.")));

	memset(ev, 0, sizeof(*ev));
	it = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &val, true);
		Assert(tok == WJB_VALUE);
		name = es_jsonb_string(&key);

		if (strcmp(name, "type") == 0)
		{
			if (val.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"type\" of event %d must be a JSON string", index)));
			ev->type = cstring_to_text_with_len(val.val.string.val, val.val.string.len);
			es_check_event_type(ev->type, index);
		}
		else if (strcmp(name, "data") == 0)
			ev->data = JsonbValueToJsonb(&val);
		else if (strcmp(name, "metadata") == 0)
			ev->metadata = JsonbValueToJsonb(&val);
		else if (strcmp(name, "id") == 0)
		{
			if (val.type == jbvNull)
				continue;
			if (val.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"id\" of event %d must be a UUID string", index)));
			ev->id = DirectFunctionCall1(uuid_in, CStringGetDatum(es_jsonb_string(&val)));
			ev->id_given = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" in event %d", name, index),
					 errhint("An event has the keys \"type\", \"data\", \"metadata\" and \"id\".")));
	}

	if (ev->type == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event %d has no \"type\"", index)));
	if (ev->data == NULL)
		ev->data = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	if (ev->metadata == NULL)
		ev->metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	es_check_payload(ev->data, ev->metadata, index);
	if (!ev->id_given)
		ev->id = es_new_uuid();
}

/* qsort comparator for uuids */
static int
es_uuid_cmp(const void *a, const void *b)
{
	return memcmp(DatumGetUUIDP(*(const Datum *) a),
				  DatumGetUUIDP(*(const Datum *) b), UUID_LEN);
}

/* Refuse a batch that names one id twice: it can be stored only once. */
static void
es_check_unique_ids(EsNewEvent *events, int n, text *stream)
{
	Datum	   *ids = palloc(sizeof(Datum) * n);
	int			m = 0;

	for (int i = 0; i < n; i++)
		if (events[i].id_given)
			ids[m++] = events[i].id;
	if (m < 2)
		return;
	qsort(ids, m, sizeof(Datum), es_uuid_cmp);
	for (int i = 1; i < m; i++)
		if (es_uuid_cmp(&ids[i - 1], &ids[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_ES_EVENT_ID_REUSED),
					 errmsg("event id %s appears twice in one append to stream \"%s\"",
							DatumGetCString(DirectFunctionCall1(uuid_out, ids[i])),
							text_to_cstring(stream)),
					 errdetail("An event id is stored once; each event of a batch needs its own id.")));
	pfree(ids);
}

/* Parse and validate the events array of eventstore.append. */
static EsNewEvent *
es_parse_batch(Jsonb *batch, int *count)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	EsNewEvent *events;
	int			n;
	int			i = 0;

	if (JB_ROOT_IS_SCALAR(batch) || !JB_ROOT_IS_ARRAY(batch))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array of event objects")));
	n = JB_ROOT_COUNT(batch);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must not be an empty array"),
				 errdetail("An append writes at least one event.")));

	events = palloc(sizeof(EsNewEvent) * n);
	it = JsonbIteratorInit(&batch->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		es_parse_event(&v, i + 1, &events[i]);
		i++;
	}
	Assert(i == n);
	*count = n;
	return events;
}

/* Does a stream at version current satisfy the expectation? */
static bool
es_expectation_met(bool has_expected, int64 expected, int64 current)
{
	if (!has_expected)
		return true;
	if (expected == -1)
		return current > 0;
	return current == expected;
}

/* ES001, with the expectation and the actual version in the detail. */
static void
es_wrong_version(text *stream, int64 expected, int64 current)
{
	char	   *name = text_to_cstring(stream);

	if (expected == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
				 errmsg("wrong expected version for stream \"%s\"", name),
				 errdetail("Expected the stream not to exist (version 0), but it is at version " INT64_FORMAT ".",
						   current)));
	else if (expected == -1)
		ereport(ERROR,
				(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
				 errmsg("wrong expected version for stream \"%s\"", name),
				 errdetail("Expected the stream to exist, but it has no events (version 0).")));
	else
		ereport(ERROR,
				(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
				 errmsg("wrong expected version for stream \"%s\"", name),
				 errdetail("Expected version " INT64_FORMAT ", but the stream is at version " INT64_FORMAT ".",
						   expected, current)));
}

static bool
es_text_equal(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * Idempotent retries.  If no given id is stored yet, return false: a
 * normal append follows.  If every event carries an id and they are all
 * stored in this stream at consecutive versions, in order, the append is
 * a retry of one that succeeded: fill *result and return true (or raise
 * ES001 if the expectation does not fit where they were written).  Any
 * other reuse of a stored id raises ES003.
 */
static bool
es_check_retry(const EsCatalog *cat, text *stream, EsNewEvent *events, int n,
			   bool has_expected, int64 expected, Snapshot snapshot,
			   EsAppendResult *result)
{
	int			nfound = 0;
	bool		all_given = true;
	bool		in_place = true;
	int			first_found = -1;
	text	   *where_stream = NULL;
	int64		where_version = 0;
	int64		first_version = 0;

	for (int i = 0; i < n; i++)
	{
		text	   *s;
		int64		version;
		int64		position;

		if (!events[i].id_given)
		{
			all_given = false;
			continue;
		}
		if (!EsFindEventById(cat, events[i].id, snapshot, &s, &version, &position))
		{
			in_place = false;
			continue;
		}
		if (nfound++ == 0)
		{
			first_found = i;
			where_stream = s;
			where_version = version;
			first_version = version - i;
		}
		if (!es_text_equal(s, stream) || version != first_version + i)
			in_place = false;
		result->version = version;
		result->position = position;
	}

	if (nfound == 0)
		return false;

	if (all_given && in_place && nfound == n)
	{
		int64		before = first_version - 1;

		if (!es_expectation_met(has_expected, expected, before))
			ereport(ERROR,
					(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
					 errmsg("wrong expected version for stream \"%s\"",
							text_to_cstring(stream)),
					 errdetail("These events were already appended at versions " INT64_FORMAT " to " INT64_FORMAT ", after version " INT64_FORMAT ", which does not match expected version " INT64_FORMAT ".",
							   first_version, result->version, before, expected)));
		return true;
	}

	ereport(ERROR,
			(errcode(ERRCODE_ES_EVENT_ID_REUSED),
			 errmsg("event id %s cannot be appended to stream \"%s\"",
					DatumGetCString(DirectFunctionCall1(uuid_out, events[first_found].id)),
					text_to_cstring(stream)),
			 errdetail("That id is already stored in stream \"%s\" at version " INT64_FORMAT ".",
					   text_to_cstring(where_stream), where_version),
			 errhint("Event ids are unique across the store; a retry must resend the same events to the same stream.")));
	return false;				/* keep compiler quiet */
}

/*
 * Insert the events at versions current+1.. with fresh global positions,
 * through ExecSimpleRelationInsert so every index, constraint and
 * trigger of the table is maintained.  A unique violation on event_id
 * (the same id appended concurrently elsewhere) is reported as ES003, one
 * on the position as what it means (a replicated copy).
 */
static void
es_insert_events(const EsCatalog *cat, text *stream, EsNewEvent *events,
				 int n, int64 current, EsAppendResult *result)
{
	Relation	rel = table_open(cat->events, RowExclusiveLock);
	EState	   *estate = CreateExecutorState();
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	MemoryContext oldcxt = CurrentMemoryContext;

	rte->rtekind = RTE_RELATION;
	rte->relid = cat->events;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
#if PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, list_make1(rte), NIL);
#else
	ExecInitRangeTable(estate, list_make1(rte));
#endif
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	estate->es_opened_result_relations = lappend(estate->es_opened_result_relations, rri);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);

	AfterTriggerBeginQuery();
	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			ExecClearTuple(slot);
			result->position = EsAllocatePosition(cat);
			result->version = current + i + 1;
			slot->tts_values[Anum_es_position - 1] = Int64GetDatum(result->position);
			slot->tts_values[Anum_es_stream - 1] = PointerGetDatum(stream);
			slot->tts_values[Anum_es_version - 1] = Int64GetDatum(result->version);
			slot->tts_values[Anum_es_event_id - 1] = events[i].id;
			slot->tts_values[Anum_es_event_type - 1] = PointerGetDatum(events[i].type);
			slot->tts_values[Anum_es_data - 1] = JsonbPGetDatum(events[i].data);
			slot->tts_values[Anum_es_metadata - 1] = JsonbPGetDatum(events[i].metadata);
			slot->tts_values[Anum_es_created_at - 1] = TimestampTzGetDatum(now);
			memset(slot->tts_isnull, false, sizeof(bool) * ES_NUM_EVENT_COLS);
			ExecStoreVirtualTuple(slot);
			ExecSimpleRelationInsert(rri, estate, slot);
			ResetPerTupleExprContext(estate);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION &&
			edata->constraint_name != NULL &&
			strcmp(edata->constraint_name, "events_event_id_key") == 0)
		{
			FlushErrorState();
			edata->sqlerrcode = ERRCODE_ES_EVENT_ID_REUSED;
			edata->message = psprintf("event id cannot be appended to stream \"%s\"",
									  text_to_cstring(stream));
			edata->hint = pstrdup("A concurrent append stored the same event id elsewhere.");
			ReThrowError(edata);
		}
		if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION &&
			edata->constraint_name != NULL &&
			strcmp(edata->constraint_name, "events_pkey") == 0)
		{
			/*
			 * Positions come only from the sequence, so a taken one means
			 * rows arrived another way: a native logical replication
			 * copy, whose sequence did not move with them.
			 */
			FlushErrorState();
			edata->message = psprintf("cannot append to stream \"%s\": global position " INT64_FORMAT " is taken",
									  text_to_cstring(stream), result->position);
			edata->detail = pstrdup("This database holds events that were not appended here, such as a logical replication copy of another store.");
			edata->hint = pstrdup("Append on the store the events come from; a copy is read-only history.");
			ReThrowError(edata);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	AfterTriggerEndQuery(estate);

	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/*
 * The append itself, shared by append and append_event: lock the stream,
 * read its version, resolve retries, check the expectation, insert.
 */
static EsAppendResult
es_append(const char *fname, text *stream, EsNewEvent *events, int n,
		  bool has_expected, int64 expected)
{
	const EsCatalog *cat = EsGetCatalog();
	EsAppendResult result = {0, 0};
	Snapshot	snapshot;
	int64		current;
	bool		any_id = false;

	PreventCommandIfReadOnly(fname);
	PreventCommandIfParallelMode(fname);
	es_check_unique_ids(events, n, stream);

	EsLockStream(stream);

	/* see our own earlier appends, and everything committed before the lock */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	current = EsCurrentVersion(cat, stream, snapshot);

	for (int i = 0; i < n && !any_id; i++)
		any_id = events[i].id_given;
	if (any_id &&
		es_check_retry(cat, stream, events, n, has_expected, expected, snapshot, &result))
	{
		UnregisterSnapshot(snapshot);
		return result;
	}
	UnregisterSnapshot(snapshot);

	if (!es_expectation_met(has_expected, expected, current))
		es_wrong_version(stream, expected, current);

	es_insert_events(cat, stream, events, n, current, &result);
	return result;
}

/* Error context: every error raised during an append names its stream. */
static void
es_append_error_context(void *arg)
{
	text	   *stream = (text *) arg;
	int			len = VARSIZE_ANY_EXHDR(stream);

	if (len > 0 && len <= ES_MAX_STREAM_NAME)
		errcontext("appending to stream \"%.*s\"", len, VARDATA_ANY(stream));
}

/* Validate the common arguments: stream name, expected version. */
static void
es_check_append_args(FunctionCallInfo fcinfo, int expected_argno)
{
	es_check_not_null(fcinfo, 0, "stream");
	EsCheckStreamName(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(expected_argno) && PG_GETARG_INT64(expected_argno) < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid expected_version " INT64_FORMAT, PG_GETARG_INT64(expected_argno)),
				 errdetail("Use NULL for any version, 0 for a new stream, -1 for an existing stream, or the exact current version.")));
}

/* Return the append result as the single row of the SRF. */
static Datum
es_return_result(FunctionCallInfo fcinfo, EsAppendResult result)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	InitMaterializedSRF(fcinfo, 0);
	values[0] = Int64GetDatum(result.version);
	values[1] = Int64GetDatum(result.position);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(eventstore_append);

/* SQL: append(stream, events jsonb, expected_version) */
Datum
eventstore_append(PG_FUNCTION_ARGS)
{
	text	   *stream;
	EsNewEvent *events;
	int			n;
	EsAppendResult result;

	ErrorContextCallback errcb;

	es_check_append_args(fcinfo, 2);
	stream = PG_GETARG_TEXT_PP(0);
	errcb.callback = es_append_error_context;
	errcb.arg = stream;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	es_check_not_null(fcinfo, 1, "events");
	events = es_parse_batch(PG_GETARG_JSONB_P(1), &n);
	result = es_append("eventstore.append", stream, events, n, !PG_ARGISNULL(2),
					   PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));

	error_context_stack = errcb.previous;
	return es_return_result(fcinfo, result);
}

PG_FUNCTION_INFO_V1(eventstore_append_event);

/* SQL: append_event(stream, event_type, data, metadata, expected_version, event_id) */
Datum
eventstore_append_event(PG_FUNCTION_ARGS)
{
	EsNewEvent ev;
	EsAppendResult result;
	ErrorContextCallback errcb;

	es_check_append_args(fcinfo, 4);
	errcb.callback = es_append_error_context;
	errcb.arg = PG_GETARG_TEXT_PP(0);
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	es_check_not_null(fcinfo, 1, "event_type");
	es_check_not_null(fcinfo, 2, "data");
	es_check_not_null(fcinfo, 3, "metadata");

	ev.type = PG_GETARG_TEXT_P(1);
	es_check_event_type(ev.type, 1);
	ev.data = PG_GETARG_JSONB_P(2);
	ev.metadata = PG_GETARG_JSONB_P(3);
	es_check_payload(ev.data, ev.metadata, 1);
	ev.id_given = !PG_ARGISNULL(5);
	ev.id = ev.id_given ? PG_GETARG_DATUM(5) : es_new_uuid();

	result = es_append("eventstore.append_event", PG_GETARG_TEXT_PP(0), &ev, 1,
					   !PG_ARGISNULL(4), PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4));

	error_context_stack = errcb.previous;
	return es_return_result(fcinfo, result);
}
