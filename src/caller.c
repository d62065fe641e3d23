/*-------------------------------------------------------------------------
 *
 * caller.c
 *	  Entry points of the SQL functions that act on owned objects
 *	  (subscriptions, projections, consumer names): each calls its twin in
 *	  schema eventstore_internal, as the twin's owner, with the calling role
 *	  as the first argument.
 *
 * The bookkeeping behind these functions needs rights application roles
 * do not have (replication slots, the extension's tables), and it must
 * decide on behalf of the role that called.  A SECURITY DEFINER function
 * cannot see who called it -- 0.1.0 used session_user, which a projection
 * handler or the background worker does not change, and an application
 * role became superuser through it.  Here the caller is GetUserId() (SQL's
 * current_user) at the moment of the call, which no one can forge: inside a
 * handler it is the projection's owner, inside a SECURITY DEFINER function
 * its owner.  The twin -- same name, (regrole, [text,] the same arguments)
 * -- is not executable by anyone but the extension's owner and lives where
 * GRANT ... ON ALL FUNCTIONS IN SCHEMA eventstore does not reach; it pins
 * its own search_path (SET search_path in its definition).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"


#define ES_INTERNAL_SCHEMA	"eventstore_internal"

/* The twin of one call site, cached in its fn_extra. */
typedef struct EsTwin
{
	Oid			owner;			/* the role the twin runs as */
	int			nargs;			/* the twin's argument count */
	FmgrInfo	flinfo;
} EsTwin;

/*
 * Find the twin of the function being called: eventstore_internal.<its
 * name>(regrole, nextra times text, <its argument types>).  Looked up once
 * per call site, by exact signature, so no overload of another schema or
 * of a user can be taken for it.  (The caller has no USAGE on that
 * schema; catalog lookups by OID check none.)
 */
static EsTwin *
es_twin(FunctionCallInfo fcinfo, int nextra)
{
	EsTwin	   *twin = (EsTwin *) fcinfo->flinfo->fn_extra;
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			nargs;
	char	   *name;
	Oid			twin_oid;

	if (twin != NULL)
		return twin;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	nargs = proc->pronargs + 1 + nextra;
	if (nargs > FUNC_MAX_ARGS)
		elog(ERROR, "too many arguments for an eventstore entry point");
	argtypes[0] = REGROLEOID;
	for (int i = 0; i < nextra; i++)
		argtypes[1 + i] = TEXTOID;
	memcpy(&argtypes[1 + nextra], proc->proargtypes.values, proc->pronargs * sizeof(Oid));
	name = pstrdup(NameStr(proc->proname));
	ReleaseSysCache(tup);

	/* by the catalog, not by name lookup: the caller has no USAGE there */
	tup = SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(name),
						  PointerGetDatum(buildoidvector(argtypes, nargs)),
						  ObjectIdGetDatum(get_namespace_oid(ES_INTERNAL_SCHEMA, true)));
	twin_oid = InvalidOid;
	if (HeapTupleIsValid(tup))
	{
		twin_oid = ((Form_pg_proc) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	if (!OidIsValid(twin_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s.%s has no implementation", "eventstore", name),
				 errdetail("The extension's objects do not match its library."),
				 errhint("Run ALTER EXTENSION eventstore UPDATE.")));

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(twin_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", twin_oid);
	twin = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(EsTwin));
	twin->owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	twin->nargs = nargs;
	fmgr_info_cxt(twin_oid, &twin->flinfo, fcinfo->flinfo->fn_mcxt);
	fcinfo->flinfo->fn_extra = twin;
	return twin;
}

/*
 * Call the twin as its owner with (caller, extra..., our arguments).  The
 * result set info and context pass through, so set-returning twins
 * (poll) return their rows straight to our caller.  The user id is back to
 * the caller's when the twin returns or fails.
 */
static Datum
es_call_twin(FunctionCallInfo fcinfo, int nextra, Datum *extra)
{
	EsTwin	   *twin = es_twin(fcinfo, nextra);
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	Oid			caller = GetUserId();
	Oid			save_userid;
	int			save_sec_context;
	volatile Datum result = (Datum) 0;

	InitFunctionCallInfoData(*inner, &twin->flinfo, twin->nargs, fcinfo->fncollation,
							 fcinfo->context, fcinfo->resultinfo);
	inner->args[0].value = ObjectIdGetDatum(caller);
	inner->args[0].isnull = false;
	for (int i = 0; i < nextra; i++)
	{
		inner->args[1 + i].value = extra[i];
		inner->args[1 + i].isnull = false;
	}
	for (int i = 0; i < fcinfo->nargs; i++)
		inner->args[1 + nextra + i] = fcinfo->args[i];

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(twin->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	fcinfo->isnull = inner->isnull;
	return result;
}

PG_FUNCTION_INFO_V1(eventstore_as_caller);

/* SQL: the entry point of poll, ack, drop_subscription, save_checkpoint, ... */
Datum
eventstore_as_caller(PG_FUNCTION_ARGS)
{
	return es_call_twin(fcinfo, 0, NULL);
}

PG_FUNCTION_INFO_V1(eventstore_as_caller_with_path);

/*
 * SQL: the entry point of create_projection, whose twin also takes the
 * caller's search_path: a handler without a SET search_path of its own
 * resolves names the way they resolved where its owner created it.
 */
Datum
eventstore_as_caller_with_path(PG_FUNCTION_ARGS)
{
	const char *path = GetConfigOption("search_path", false, false);
	Datum		extra[1];

	extra[0] = CStringGetTextDatum(path != NULL ? path : "");
	return es_call_twin(fcinfo, 1, extra);
}
