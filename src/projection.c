/*-------------------------------------------------------------------------
 *
 * projection.c
 *	  Calling projection handlers: as the projection's owner, from
 *	  run_projection and the worker (eventstore_internal.call_handler) and
 *	  from the AFTER INSERT trigger of inline projections.
 *
 * A handler runs as exactly what its projection's owner could do in a
 * session of its own, whoever triggered it (an appender, run_projection,
 * the worker):
 * - as the owner, with SECURITY_LOCAL_USERID_CHANGE, so it cannot SET ROLE
 *   its way to the caller or back to the extension owner;
 * - in a security-restricted operation, as PostgreSQL runs index
 *   expressions during maintenance: it cannot create temporary objects or
 *   otherwise leave state in a session that is not its owner's;
 * - with the search_path the projection records (its owner's when it was
 *   created; the handler's own SET search_path still wins), never the
 *   triggering session's, and with pg_temp searched last, so an appender
 *   can plant neither a function nor a temporary table for it to find;
 * - and every setting it changes is undone when it returns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/varlena.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "catalog.h"
#include "eventstore.h"
#include "projection.h"

/*
 * The handler of one call site, cached in the caller's fn_extra: no
 * catalog lookup per event.  For the inline trigger also its parsed
 * arguments.
 */
typedef struct EsHandlerCache
{
	Oid			trigger;		/* inline trigger it belongs to, if any */
	Oid			handler;
	Oid			owner;
	FmgrInfo	flinfo;
} EsHandlerCache;

/* The cache entry of outer's call site for (handler, owner). */
static EsHandlerCache *
es_handler_cache(FunctionCallInfo outer, Oid trigger, Oid handler, Oid owner)
{
	EsHandlerCache *c = (EsHandlerCache *) outer->flinfo->fn_extra;

	if (c == NULL)
	{
		c = MemoryContextAllocZero(outer->flinfo->fn_mcxt, sizeof(EsHandlerCache));
		outer->flinfo->fn_extra = c;
	}
	if (c->handler != handler || !OidIsValid(c->handler) || c->trigger != trigger)
	{
		fmgr_info_cxt(handler, &c->flinfo, outer->flinfo->fn_mcxt);
		c->handler = handler;
		c->trigger = trigger;
	}
	c->owner = owner;
	return c;
}

/* Is this element of a search_path the session's temporary schema? */
static bool
es_is_pg_temp(const char *schema)
{
	return strcmp(schema, "pg_temp") == 0 || strncmp(schema, "pg_temp_", 8) == 0;
}

/*
 * The search_path a handler runs with: the projection's, with pg_temp
 * moved (or added) last.  A schema not named is never searched; pg_temp
 * not named is searched first for relations and types, where the session
 * that appended could have put its own.
 */
static char *
es_handler_search_path(const char *path)
{
	char	   *copy = pstrdup(path);
	List	   *elems = NIL;
	StringInfoData buf;
	ListCell   *lc;

	if (!SplitIdentifierString(copy, ',', &elems))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid search_path \"%s\" of a projection", path)));
	initStringInfo(&buf);
	foreach(lc, elems)
	{
		const char *schema = (const char *) lfirst(lc);

		if (es_is_pg_temp(schema))
			continue;
		appendStringInfo(&buf, "%s, ", quote_identifier(schema));
	}
	appendStringInfoString(&buf, "pg_temp");
	return buf.data;
}

/*
 * What a handler must be each time it runs, not only when its projection
 * was created (its owner may have lost the right since): executable by
 * the owner, in a schema the owner may use, and -- when it sets its own
 * search_path, which then replaces the projection's -- with pg_temp named
 * last, or the appending session's temporary tables and types would be
 * found first, and run as the owner.  Errors with 42501.
 */
static void
es_check_handler(Oid handler, Oid owner)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	Datum		config;
	bool		isnull;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler of a projection, function %u, does not exist", handler),
				 errhint("Drop the projection, or create it again with an existing handler.")));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (pg_namespace_aclcheck(proc->pronamespace, owner, ACL_USAGE) != ACLCHECK_OK ||
		pg_proc_aclcheck(handler, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", format_procedure(handler)),
				 errdetail("A projection's owner, role %s, needs USAGE on the handler's schema and EXECUTE on the handler.",
						   GetUserNameFromId(owner, true) ? GetUserNameFromId(owner, true) : "(dropped)")));
	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		ArrayType  *a = DatumGetArrayTypeP(config);
		Datum	   *items;
		int			n;

		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &items, NULL, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *item = TextDatumGetCString(items[i]);
			List	   *elems = NIL;

			if (strncmp(item, "search_path=", 12) != 0)
				continue;
			/* SplitIdentifierString writes into its input: split a copy */
			if (!SplitIdentifierString(pstrdup(item + 12), ',', &elems) || elems == NIL ||
				!es_is_pg_temp((const char *) llast(elems)))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("handler %s sets a search_path that does not end with pg_temp",
								format_procedure(handler)),
						 errdetail("A handler can run in another role's session, whose temporary tables and types would be searched first."),
						 errhint("ALTER FUNCTION %s SET search_path = %s, pg_temp",
								 format_procedure(handler), item + 12)));
		}
	}
	ReleaseSysCache(tup);
}

PG_FUNCTION_INFO_V1(eventstore_check_handler);

/*
 * SQL: eventstore_internal.check_handler(handler, owner) -- the checks
 * every call makes, at create_projection.
 */
Datum
eventstore_check_handler(PG_FUNCTION_ARGS)
{
	es_check_handler(PG_GETARG_OID(0), PG_GETARG_OID(1));
	PG_RETURN_VOID();
}

/*
 * Call handler (flinfo) with arg as owner, in a security-restricted
 * operation, with search_path (as es_handler_search_path made it; see the
 * file header).  The GUC nest level is always rolled back: nothing the
 * handler SETs outlives it.  On error, the (sub)transaction abort restores
 * all of it.
 */
static void
es_call_handler_as(Oid handler, Oid owner, FmgrInfo *flinfo, const char *search_path,
				   Datum arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;

	es_check_handler(handler, owner);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		LOCAL_FCINFO(fcinfo, 1);

		/* not OidFunctionCall1: a void SQL function returns NULL */
		InitFunctionCallInfoData(*fcinfo, flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = arg;
		fcinfo->args[0].isnull = false;
		(void) FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nestlevel);
}

/* Call the cached handler with event (see es_call_handler_as). */
static void
es_call_as(EsHandlerCache *c, const char *search_path, Datum event)
{
	es_call_handler_as(c->handler, c->owner, &c->flinfo, es_handler_search_path(search_path),
					   event);
}

/*
 * Is handler a batch handler, handler(events eventstore.event[])?  (Else
 * it takes one eventstore.event: create_projection accepts only these.)
 */
bool
EsHandlerIsBatch(Oid handler)
{
	HeapTuple	tup;
	bool		batch;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler of a projection, function %u, does not exist", handler),
				 errhint("Drop the projection, or create it again with an existing handler.")));
	batch = ((Form_pg_proc) GETSTRUCT(tup))->pronargs == 1 &&
		((Form_pg_proc) GETSTRUCT(tup))->proargtypes.values[0] ==
		get_array_type(EsGetCatalog()->event_type);
	ReleaseSysCache(tup);
	return batch;
}

/*
 * Prepare a handler for calls by EsHandlerCall, in cxt: looked up once per
 * batch, its search_path made once.
 */
void
EsHandlerInit(EsHandler *h, Oid handler, Oid owner, const char *search_path,
			  MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	h->handler = handler;
	h->owner = owner;
	h->batch = EsHandlerIsBatch(handler);
	h->search_path = es_handler_search_path(search_path);
	h->cxt = cxt;
	h->stale = false;
	fmgr_info_cxt(handler, &h->flinfo, cxt);
	MemoryContextSwitchTo(old);
}

/*
 * A call of the handler failed, and its (sub)transaction was rolled back:
 * its FmgrInfo must not be used again.  A language handler's cache in it
 * may point to what the error freed (PL/pgSQL, when CREATE OR REPLACE
 * FUNCTION made the function fail to compile), and the function may have
 * changed its language.  The next EsHandlerBegin looks it up anew.
 */
void
EsHandlerFailed(EsHandler *h)
{
	h->stale = true;
}

/*
 * Start calling a handler prepared by EsHandlerInit: its search_path is
 * set once, at a GUC nest level of its own, for the EsHandlerCall calls
 * that follow; EsHandlerEnd undoes it (or the (sub)transaction's abort).
 */
int
EsHandlerBegin(EsHandler *h)
{
	int			nestlevel;

	if (h->stale)
	{
		/* in the caller's (sub)transaction: a function gone fails the call */
		es_check_handler(h->handler, h->owner);
		memset(&h->flinfo, 0, sizeof(h->flinfo));
		fmgr_info_cxt(h->handler, &h->flinfo, h->cxt);
		h->stale = false;
	}
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", h->search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/* The end of EsHandlerBegin's calls. */
void
EsHandlerEnd(int nestlevel)
{
	AtEOXact_GUC(false, nestlevel);
}

/*
 * Call a handler prepared by EsHandlerInit, between EsHandlerBegin and
 * EsHandlerEnd, with arg (an eventstore.event, or an eventstore.event[]
 * for a batch handler), as its owner with every restriction of the file
 * header, checked again at this call.  Each call has a GUC nest level of
 * its own: whatever the handler sets, the next call starts with the
 * projection's search_path and nothing else changed.
 */
void
EsHandlerCall(EsHandler *h, Datum arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;

	es_check_handler(h->handler, h->owner);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	nestlevel = NewGUCNestLevel();
	SetUserIdAndSecContext(h->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		LOCAL_FCINFO(fcinfo, 1);

		InitFunctionCallInfoData(*fcinfo, &h->flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = arg;
		fcinfo->args[0].isnull = false;
		(void) FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nestlevel);
}

/* 42501 unless the current role owns the extension's objects. */
void
EsRequireExtensionOwner(const char *function)
{
#if PG_VERSION_NUM >= 160000
	if (!object_ownercheck(RelationRelationId, EsGetCatalog()->events, GetUserId()))
#else
	if (!pg_class_ownercheck(EsGetCatalog()->events, GetUserId()))
#endif
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function eventstore_internal.%s", function),
				 errdetail("Only the owner of the eventstore extension's objects may call it.")));
}

PG_FUNCTION_INFO_V1(eventstore_call_handler);

/*
 * The search_path of a handler whose projection recorded none: that of
 * 0.1.0's objects, still calling this library until ALTER EXTENSION
 * eventstore UPDATE (which gives their projections this same value).
 */
#define ES_DEFAULT_HANDLER_PATH "\"$user\", public"

/*
 * SQL: eventstore_internal.call_handler(handler, owner, search_path, e),
 * and 0.1.0's eventstore._call_handler(handler, owner, e).  It runs a
 * function as any role, so only the extension's owner may call it (that
 * is, the internal projection functions and the worker), whatever EXECUTE
 * grants say.
 */
Datum
eventstore_call_handler(PG_FUNCTION_ARGS)
{
	EsRequireExtensionOwner("call_handler");
	if (PG_NARGS() == 3)
		es_call_as(es_handler_cache(fcinfo, InvalidOid, PG_GETARG_OID(0), PG_GETARG_OID(1)),
				   ES_DEFAULT_HANDLER_PATH, PG_GETARG_DATUM(2));
	else
		es_call_as(es_handler_cache(fcinfo, InvalidOid, PG_GETARG_OID(0), PG_GETARG_OID(1)),
				   text_to_cstring(PG_GETARG_TEXT_PP(2)), PG_GETARG_DATUM(3));
	PG_RETURN_VOID();
}

/* Does the comma-separated list contain the text exactly? */
static bool
es_list_contains(const char *list, const char *s, Size len)
{
	const char *p = list;

	while (*p)
	{
		const char *end = strchr(p, ',');
		Size		n = end ? (Size) (end - p) : strlen(p);

		if (n == len && memcmp(p, s, len) == 0)
			return true;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return false;
}

PG_FUNCTION_INFO_V1(eventstore_inline_projection);

/*
 * AFTER INSERT FOR EACH ROW trigger of an inline projection.  Arguments:
 * projection name, handler oid, owner oid, stream prefix ('' = any),
 * event types (comma list, '' = any), search_path (absent in 0.1.0's
 * triggers).  A failing handler fails the append.
 */
Datum
eventstore_inline_projection(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	char	  **args;
	HeapTuple	row;
	TupleDesc	rowdesc;
	TupleDesc	eventdesc;
	Datum		values[ES_NUM_EVENT_COLS];
	bool		nulls[ES_NUM_EVENT_COLS];
	text	   *stream;
	text	   *type;
	Oid			event_type_oid;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_internal.inline_projection() must be an AFTER INSERT FOR EACH ROW trigger")));
	/* 6; 5 for a trigger made by 0.1.0, until ALTER EXTENSION UPDATE */
	if (trigdata->tg_trigger->tgnargs != 6 && trigdata->tg_trigger->tgnargs != 5)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_internal.inline_projection() needs 6 arguments")));
	/*
	 * Only on eventstore.events: its triggers are made by the extension's
	 * owner, while anyone may attach this function to a table of their own
	 * with arguments that name any handler and owner.
	 */
	if (RelationGetRelid(trigdata->tg_relation) != EsGetCatalog()->events)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_internal.inline_projection() fires only on eventstore.events")));
	args = trigdata->tg_trigger->tgargs;

	row = trigdata->tg_trigtuple;
	rowdesc = RelationGetDescr(trigdata->tg_relation);
	heap_deform_tuple(row, rowdesc, values, nulls);

	stream = DatumGetTextPP(values[Anum_es_stream - 1]);
	if (args[3][0] != '\0')
	{
		Size		plen = strlen(args[3]);

		if (VARSIZE_ANY_EXHDR(stream) < plen ||
			memcmp(VARDATA_ANY(stream), args[3], plen) != 0)
			return PointerGetDatum(NULL);
	}
	type = DatumGetTextPP(values[Anum_es_event_type - 1]);
	if (args[4][0] != '\0' &&
		!es_list_contains(args[4], VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type)))
		return PointerGetDatum(NULL);

	/* the row as an eventstore.event */
	event_type_oid = EsGetCatalog()->event_type;
	eventdesc = lookup_rowtype_tupdesc(event_type_oid, -1);
	{
		HeapTuple	ev = heap_form_tuple(eventdesc, values, nulls);

		EsHandlerCache *c = (EsHandlerCache *) fcinfo->flinfo->fn_extra;

		ReleaseTupleDesc(eventdesc);
		if (c == NULL || c->trigger != trigdata->tg_trigger->tgoid)
			c = es_handler_cache(fcinfo, trigdata->tg_trigger->tgoid,
								 DatumGetObjectId(DirectFunctionCall1(oidin, CStringGetDatum(args[1]))),
								 DatumGetObjectId(DirectFunctionCall1(oidin, CStringGetDatum(args[2]))));
		es_call_as(c, trigdata->tg_trigger->tgnargs == 6 ? args[5] : ES_DEFAULT_HANDLER_PATH,
				   HeapTupleGetDatum(ev));
	}
	return PointerGetDatum(NULL);
}
