/*-------------------------------------------------------------------------
 *
 * preload.c
 *	  Whether the library was preloaded, and the refusal to run without.
 *
 * The gap-safe global feed keeps its registry of in-flight appends in
 * shared memory, which only a library in shared_preload_libraries gets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "preload.h"

/* true when the library was loaded through shared_preload_libraries */
bool		es_preloaded = false;

/* Remember whether this load is the preload (from _PG_init). */
void
EsPreloadInit(void)
{
	if (process_shared_preload_libraries_in_progress)
		es_preloaded = true;
}

/* Error out, with a hint naming the setting, unless preloaded. */
void
EsRequirePreloaded(void)
{
	if (!es_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore must be loaded via \"shared_preload_libraries\""),
				 errdetail("The gap-safe global feed keeps its registry of in-flight appends in shared memory."),
				 errhint("Add eventstore to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

PG_FUNCTION_INFO_V1(eventstore_assert_preloaded);

/* SQL: called by the install script so CREATE EXTENSION fails early. */
Datum
eventstore_assert_preloaded(PG_FUNCTION_ARGS)
{
	EsRequirePreloaded();
	PG_RETURN_VOID();
}
