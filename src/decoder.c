/*-------------------------------------------------------------------------
 *
 * decoder.c
 *	  The logical decoding output plugin "eventstore": inserts into
 *	  eventstore.events, in commit order, one JSON line per event.
 *
 *	  {"position":1,"stream":"task-1","version":1,"id":"...","type":"...",
 *	   "data":{...},"metadata":{...},"created_at":"...","lsn":"0/16B3748",
 *	   "seq":0}
 *
 * "lsn" is the commit LSN of the event's transaction and "seq" the
 * event's index among the transaction's events (counted before
 * filtering), so (lsn, seq) orders and identifies every delivered event.
 *
 * Options: stream-prefixes and event-types (comma-separated lists;
 * filtering happens before any formatting), format-version (1),
 * write-progress (boolean, default off), and output-format: "json" (the
 * default, above) or "cursors", the binary format eventstore.poll decodes
 * with (decoder.h): per event 'E' and an EsDecodedEvent, per transaction 'P'
 * and the end LSN of its commit -- no JSON, and only the position, stream
 * and type columns are read.  Unknown options are errors.
 * Nothing is written for transactions without matching events -- unless
 * write-progress is on, in which case every transaction ends with one line
 * {"progress":"<end lsn of its commit>"}, which tells a consumer where the
 * decoded transaction ends, so it can advance its slot past what it has
 * acknowledged or does not want.  Progress is also reported to the
 * walsender, so consumers of filtered-out traffic do not time out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "eventstore.h"
#include "jsonwrite.h"
#include "decoder.h"

/* Report progress to the walsender after this many skipped changes. */
#define ES_PROGRESS_EVERY	100

/* Per-slot state of the plugin. */
typedef struct EsDecoder
{
	MemoryContext context;		/* reset after every change */
	List	   *prefixes;		/* of char *; NIL: every stream */
	List	   *types;			/* of char *; NIL: every type */
	HTAB	   *relcache;		/* relid -> is it eventstore.events? */
	Oid			last_relid;		/* the last relation looked up, */
	bool		last_is_events; /* and the answer */
	int			seq;			/* events seen in the current transaction */
	bool		wrote;			/* wrote anything for it */
	int			skipped;		/* changes since the last progress report */
	bool		write_progress; /* write a line for commits without events */
	bool		cursors;		/* output-format cursors (decoder.h) */
} EsDecoder;

typedef struct EsRelEntry
{
	Oid			relid;
	bool		valid;			/* false: look it up again */
	bool		is_events;
} EsRelEntry;

void		_PG_output_plugin_init(OutputPluginCallbacks *cb);

/*
 * The decoder whose relation cache the relcache callback maintains: the one
 * decoding in this process (a backend or walsender decodes one slot at a
 * time), or NULL.  The callback is registered once per process, as
 * pgoutput's is: PostgreSQL allows only a few and never unregisters them.
 */
static EsDecoder *es_active_decoder = NULL;
static bool es_relcache_callback_registered = false;

/*
 * Split a comma-separated option value into a list of non-empty items,
 * without the spaces around them.
 */
static List *
es_parse_list(DefElem *opt)
{
	char	   *value;
	List	   *items = NIL;
	char	   *tok;
	char	   *save;

	if (opt->arg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" needs a value", opt->defname)));
	value = pstrdup(strVal(opt->arg));
	for (tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *end;

		while (*tok == ' ')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && end[-1] == ' ')
			*--end = '\0';
		if (*tok != '\0')
			items = lappend(items, tok);
	}
	if (items == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must list at least one item", opt->defname)));
	return items;
}

/*
 * Relcache invalidation: forget what is known about the relation (all of
 * them for InvalidOid).  Decoding executes the invalidations of each
 * decoded transaction that changed the catalogs, so a relation renamed,
 * moved to another schema, or dropped and its OID reused, is looked up
 * again under the catalog snapshot of the changes that follow; without
 * this, an insert into eventstore.events renamed away would still be
 * decoded as an event (test/t/037).  Only marks entries: no catalog
 * access, no error.
 */
static void
es_relcache_invalidate(Datum arg pg_attribute_unused(), Oid relid)
{
	EsDecoder  *d = es_active_decoder;

	if (d == NULL || d->relcache == NULL)
		return;
	if (relid == InvalidOid)
	{
		HASH_SEQ_STATUS status;
		EsRelEntry *e;

		hash_seq_init(&status, d->relcache);
		while ((e = hash_seq_search(&status)) != NULL)
			e->valid = false;
	}
	else
	{
		EsRelEntry *e = hash_search(d->relcache, &relid, HASH_FIND, NULL);

		if (e != NULL)
			e->valid = false;
	}
	d->last_relid = InvalidOid;
}

/*
 * The decoding context's memory goes away (normal end or error): the
 * callback must no longer reach this decoder.
 */
static void
es_decoder_reset_cb(void *arg)
{
	if (es_active_decoder == (EsDecoder *) arg)
		es_active_decoder = NULL;
}

/* Parse the options; textual output. */
static void
es_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
		   bool is_init pg_attribute_unused())
{
	EsDecoder  *d = palloc0(sizeof(EsDecoder));
	HASHCTL		hctl;
	ListCell   *lc;

	d->context = AllocSetContextCreate(ctx->context, "eventstore decoder",
									   ALLOCSET_DEFAULT_SIZES);
	hctl.keysize = sizeof(Oid);
	hctl.entrysize = sizeof(EsRelEntry);
	hctl.hcxt = ctx->context;
	d->relcache = hash_create("eventstore decoder relations", 16, &hctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	d->last_relid = InvalidOid;

	if (!es_relcache_callback_registered)
	{
		CacheRegisterRelcacheCallback(es_relcache_invalidate, (Datum) 0);
		es_relcache_callback_registered = true;
	}
	{
		MemoryContextCallback *mcb = MemoryContextAlloc(ctx->context,
														sizeof(MemoryContextCallback));

		mcb->func = es_decoder_reset_cb;
		mcb->arg = d;
		MemoryContextRegisterResetCallback(ctx->context, mcb);
	}
	es_active_decoder = d;

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		if (strcmp(elem->defname, "stream-prefixes") == 0)
			d->prefixes = es_parse_list(elem);
		else if (strcmp(elem->defname, "event-types") == 0)
			d->types = es_parse_list(elem);
		else if (strcmp(elem->defname, "write-progress") == 0)
		{
			if (elem->arg == NULL)
				d->write_progress = true;
			else if (!parse_bool(strVal(elem->arg), &d->write_progress))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("could not parse value \"%s\" for option \"%s\"",
								strVal(elem->arg), elem->defname)));
		}
		else if (strcmp(elem->defname, "output-format") == 0)
		{
			if (elem->arg != NULL && strcmp(strVal(elem->arg), "cursors") == 0)
				d->cursors = true;
			else if (elem->arg == NULL || strcmp(strVal(elem->arg), "json") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unsupported output-format \"%s\"",
								elem->arg ? strVal(elem->arg) : ""),
						 errhint("Formats are json and cursors.")));
		}
		else if (strcmp(elem->defname, "format-version") == 0)
		{
			if (elem->arg == NULL || strcmp(strVal(elem->arg), "1") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unsupported format-version \"%s\"",
								elem->arg ? strVal(elem->arg) : ""),
						 errhint("This version of eventstore writes format-version 1.")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is unknown to the eventstore output plugin",
							elem->defname),
					 errhint("Options are stream-prefixes, event-types, format-version, write-progress and output-format.")));
	}

	ctx->output_plugin_private = d;
	opt->output_type = d->cursors ? OUTPUT_PLUGIN_BINARY_OUTPUT : OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
}

/* Everything lives in ctx->context; only detach from the callback. */
static void
es_shutdown(LogicalDecodingContext *ctx)
{
	if (es_active_decoder == ctx->output_plugin_private)
		es_active_decoder = NULL;
}

/* A transaction starts: restart its event count. */
static void
es_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn pg_attribute_unused())
{
	EsDecoder  *d = ctx->output_plugin_private;

	d->seq = 0;
	d->wrote = false;
}

/*
 * A transaction ends: write a progress line when asked to; otherwise, if
 * it wrote nothing, just report progress.
 */
static void
es_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		  XLogRecPtr commit_lsn pg_attribute_unused())
{
	EsDecoder  *d = ctx->output_plugin_private;

	if (d->cursors)
	{
		OutputPluginPrepareWrite(ctx, true);
		appendStringInfoChar(ctx->out, ES_DECODED_PROGRESS);
		appendBinaryStringInfo(ctx->out, (const char *) &txn->end_lsn, sizeof(XLogRecPtr));
		OutputPluginWrite(ctx, true);
	}
	else if (d->write_progress)
	{
		OutputPluginPrepareWrite(ctx, true);
		appendStringInfo(ctx->out, "{\"progress\":\"%X/%X\"}",
						 LSN_FORMAT_ARGS(txn->end_lsn));
		OutputPluginWrite(ctx, true);
	}
	else if (!d->wrote)
		OutputPluginUpdateProgress(ctx, true);
}

/*
 * Is rel eventstore.events?  One catalog lookup per relation, until a
 * relcache invalidation of that relation (es_relcache_invalidate).
 */
static bool
es_is_events_rel(EsDecoder *d, Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	bool		found;
	EsRelEntry *e;

	if (relid == d->last_relid)
		return d->last_is_events;
	e = hash_search(d->relcache, &relid, HASH_ENTER, &found);

	if (!found || !e->valid)
	{
		char	   *nsp = get_namespace_name(RelationGetNamespace(rel));

		e->is_events = nsp != NULL && strcmp(nsp, "eventstore") == 0 &&
			strcmp(RelationGetRelationName(rel), "events") == 0 &&
			RelationGetDescr(rel)->natts >= ES_NUM_EVENT_COLS;
		e->valid = true;
	}
	d->last_relid = relid;
	d->last_is_events = e->is_events;
	return e->is_events;
}

/* Does a text datum start with one of the prefixes / equal one of the items? */
static bool
es_text_in_list(text *t, List *items, bool prefix)
{
	const char *s = VARDATA_ANY(t);
	Size		len = VARSIZE_ANY_EXHDR(t);
	ListCell   *lc;

	foreach(lc, items)
	{
		const char *item = lfirst(lc);
		Size		ilen = strlen(item);

		if ((prefix ? len >= ilen : len == ilen) && memcmp(s, item, ilen) == 0)
			return true;
	}
	return false;
}

/* Append a text datum as a JSON string. */
static void
es_json_text(StringInfo out, Datum value)
{
	text	   *t = DatumGetTextPP(value);

	EsJsonString(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* Report progress now and then while changes are being skipped. */
static void
es_skip(LogicalDecodingContext *ctx, EsDecoder *d)
{
	if (++d->skipped >= ES_PROGRESS_EVERY)
	{
		d->skipped = 0;
		OutputPluginUpdateProgress(ctx, false);
	}
}

/*
 * output-format cursors: one EsDecodedEvent for an event that passes the
 * filters.  Reads only the columns the filters and the cursor need (the
 * stream, type and position lead the row, so nothing else is deformed).
 */
static void
es_change_cursor(LogicalDecodingContext *ctx, EsDecoder *d, ReorderBufferTXN *txn,
				 Relation rel, ReorderBufferChange *change, int seq)
{
	HeapTuple	tuple = &change->data.tp.newtuple->tuple;
	TupleDesc	desc = RelationGetDescr(rel);
	EsDecodedEvent ev;
	bool		isnull;
	Datum		value;

	if (d->prefixes != NIL)
	{
		value = heap_getattr(tuple, Anum_es_stream, desc, &isnull);
		if (isnull || !es_text_in_list(DatumGetTextPP(value), d->prefixes, true))
		{
			es_skip(ctx, d);
			return;
		}
	}
	if (d->types != NIL)
	{
		value = heap_getattr(tuple, Anum_es_event_type, desc, &isnull);
		if (isnull || !es_text_in_list(DatumGetTextPP(value), d->types, false))
		{
			es_skip(ctx, d);
			return;
		}
	}
	value = heap_getattr(tuple, Anum_es_position, desc, &isnull);
	if (isnull)
		elog(ERROR, "unexpected NULL in column %d of eventstore.events", Anum_es_position);

	memset(&ev, 0, sizeof(ev));	/* its padding goes out too */
	ev.commit_lsn = txn->final_lsn;
	ev.seq = seq;
	ev.position = DatumGetInt64(value);
	ev.xid = txn->xid;
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoChar(ctx->out, ES_DECODED_EVENT);
	appendBinaryStringInfo(ctx->out, (const char *) &ev, sizeof(ev));
	OutputPluginWrite(ctx, true);
	d->wrote = true;
	d->skipped = 0;
}

/* One change: if it is an insert into the events table, write one line. */
static void
es_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		  Relation rel, ReorderBufferChange *change)
{
	EsDecoder  *d = ctx->output_plugin_private;
	MemoryContext old;
	HeapTuple	tuple;
	Datum		values[ES_NUM_EVENT_COLS];
	bool		nulls[ES_NUM_EVENT_COLS];
	StringInfo	out;
	int			seq;

	if (change->action != REORDER_BUFFER_CHANGE_INSERT ||
		change->data.tp.newtuple == NULL || !es_is_events_rel(d, rel))
	{
		es_skip(ctx, d);
		return;
	}
	seq = d->seq++;

	if (d->cursors)
	{
		old = MemoryContextSwitchTo(d->context);
		es_change_cursor(ctx, d, txn, rel, change, seq);
		MemoryContextSwitchTo(old);
		MemoryContextReset(d->context);
		return;
	}

	old = MemoryContextSwitchTo(d->context);
	tuple = &change->data.tp.newtuple->tuple;
	heap_deform_tuple(tuple, RelationGetDescr(rel), values, nulls);
	for (int i = 0; i < ES_NUM_EVENT_COLS; i++)
		if (nulls[i])
			elog(ERROR, "unexpected NULL in column %d of eventstore.events", i + 1);

	if ((d->prefixes != NIL &&
		 !es_text_in_list(DatumGetTextPP(values[Anum_es_stream - 1]), d->prefixes, true)) ||
		(d->types != NIL &&
		 !es_text_in_list(DatumGetTextPP(values[Anum_es_event_type - 1]), d->types, false)))
	{
		MemoryContextSwitchTo(old);
		MemoryContextReset(d->context);
		es_skip(ctx, d);
		return;
	}

	OutputPluginPrepareWrite(ctx, true);
	out = ctx->out;
	EsPutLiteral(out, "{\"position\":");
	EsAppendInt64(out, DatumGetInt64(values[Anum_es_position - 1]));
	EsPutLiteral(out, ",\"stream\":");
	es_json_text(out, values[Anum_es_stream - 1]);
	EsPutLiteral(out, ",\"version\":");
	EsAppendInt64(out, DatumGetInt64(values[Anum_es_version - 1]));
	EsPutLiteral(out, ",\"id\":");
	EsJsonUuid(out, DatumGetUUIDP(values[Anum_es_event_id - 1]));
	EsPutLiteral(out, ",\"type\":");
	es_json_text(out, values[Anum_es_event_type - 1]);
	EsPutLiteral(out, ",\"data\":");
	EsJsonJsonb(out, DatumGetJsonbP(values[Anum_es_data - 1]));
	EsPutLiteral(out, ",\"metadata\":");
	EsJsonJsonb(out, DatumGetJsonbP(values[Anum_es_metadata - 1]));
	EsPutLiteral(out, ",\"created_at\":");
	EsJsonTimestamptz(out, DatumGetTimestampTz(values[Anum_es_created_at - 1]));
	EsPutLiteral(out, ",\"lsn\":");
	EsJsonLsn(out, txn->final_lsn);
	EsPutLiteral(out, ",\"seq\":");
	EsAppendInt64(out, seq);
	EsPutChar(out, '}');
	out->data[out->len] = '\0';
	OutputPluginWrite(ctx, true);

	d->wrote = true;
	d->skipped = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(d->context);
}

/* Register the callbacks of the "eventstore" output plugin. */
void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = es_startup;
	cb->begin_cb = es_begin;
	cb->change_cb = es_change;
	cb->commit_cb = es_commit;
	cb->shutdown_cb = es_shutdown;
}
