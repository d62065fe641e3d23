/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Backend-local cache of the OIDs of the extension's table, sequence
 *	  and indexes, so hot paths do no name lookups.
 *
 * The cache is dropped on any relcache invalidation of a cached relation
 * (DROP/CREATE EXTENSION, ALTER, REINDEX ...) or syscache invalidation of
 * the composite type eventstore.event, and rebuilt on next use.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "preload.h"

static EsCatalog es_catalog;
static bool es_catalog_valid = false;
static uint32 es_catalog_type_hash;	/* TYPEOID hash of es_catalog.event_type */

/* Forget the cached OIDs when one of our relations changes. */
static void
es_catalog_invalidate(Datum arg pg_attribute_unused(), Oid relid)
{
	if (!es_catalog_valid)
		return;
	if (relid == InvalidOid ||
		relid == es_catalog.events ||
		relid == es_catalog.position_seq ||
		relid == es_catalog.pkey_idx ||
		relid == es_catalog.stream_idx ||
		relid == es_catalog.event_id_idx ||
		relid == es_catalog.category_idx ||
		relid == es_catalog.type_idx ||
		relid == es_catalog.subscription ||
		relid == es_catalog.subscription_slot_idx)
		es_catalog_valid = false;
}

/*
 * Forget the cached OIDs when the type eventstore.event changes or goes
 * (hashvalue 0: every entry of the cache).
 */
static void
es_catalog_type_invalidate(Datum arg pg_attribute_unused(),
						   int cacheid pg_attribute_unused(), uint32 hashvalue)
{
	if (es_catalog_valid && (hashvalue == 0 || hashvalue == es_catalog_type_hash))
		es_catalog_valid = false;
}

/* Register the invalidation callback once per backend (from _PG_init). */
void
EsCatalogInit(void)
{
	CacheRegisterRelcacheCallback(es_catalog_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, es_catalog_type_invalidate, (Datum) 0);
}

/* Look up one relation of the schema, failing clearly if it is missing. */
static Oid
es_lookup_rel(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("relation \"eventstore.%s\" does not exist", name),
				 errhint("Reinstall the extension: DROP EXTENSION eventstore; CREATE EXTENSION eventstore;")));
	return relid;
}

/*
 * Return the OIDs of the extension's objects in the current database,
 * looking them up only when the cache is cold.
 */
const EsCatalog *
EsGetCatalog(void)
{
	Oid			nsp;
	EsCatalog	c;

	if (es_catalog_valid)
		return &es_catalog;

	EsRequirePreloaded();

	nsp = get_namespace_oid("eventstore", true);
	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"eventstore\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION eventstore;")));

	c.events = es_lookup_rel(nsp, "events");
	c.position_seq = es_lookup_rel(nsp, "global_position_seq");
	c.pkey_idx = es_lookup_rel(nsp, "events_pkey");
	c.stream_idx = es_lookup_rel(nsp, "events_stream_version_key");
	c.event_id_idx = es_lookup_rel(nsp, "events_event_id_key");
	c.category_idx = es_lookup_rel(nsp, "events_category_idx");
	c.type_idx = es_lookup_rel(nsp, "events_type_idx");
	c.subscription = es_lookup_rel(nsp, "subscription");
	c.subscription_slot_idx = es_lookup_rel(nsp, "subscription_slot_name_key");
	c.event_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								   CStringGetDatum("event"), ObjectIdGetDatum(nsp));
	if (!OidIsValid(c.event_type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type \"eventstore.event\" does not exist"),
				 errhint("Reinstall the extension: DROP EXTENSION eventstore; CREATE EXTENSION eventstore;")));

	es_catalog = c;
	es_catalog_type_hash = GetSysCacheHashValue1(TYPEOID, ObjectIdGetDatum(c.event_type));
	es_catalog_valid = true;
	return &es_catalog;
}
