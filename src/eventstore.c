/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *	  Module entry: PG_MODULE_MAGIC, _PG_init and the shared memory hooks.
 *
 * _PG_init only delegates: each module defines its own settings and
 * callbacks in its ...Init function, and its shared memory in
 * ...ShmemSize and ...ShmemInit.  No other file calls into this one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "append.h"
#include "catalog.h"
#include "preload.h"
#include "registry.h"
#include "result.h"
#include "slot.h"
#include "subscription.h"
#include "worker.h"

PG_MODULE_MAGIC;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* Ask for the shared memory of the in-flight registry and the others. */
static void
es_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(EsRegistryShmemSize());
	RequestAddinShmemSpace(EsWorkerShmemSize());
	RequestAddinShmemSpace(EsSubscriptionShmemSize());
}

/* Create or attach to the in-flight registry and the others. */
static void
es_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	EsRegistryShmemInit();
	EsWorkerShmemInit();
	EsSubscriptionShmemInit();
}

/*
 * Module load.  Settings are defined whenever the library is loaded; the
 * shared memory and its hooks only when it is preloaded (each module's
 * Init checks process_shared_preload_libraries_in_progress for its own).
 *
 * Order matters for the transaction callbacks: PostgreSQL calls the one
 * registered last first, and the worker's must run after the registry's
 * at commit (worker.c), so EsWorkerInit comes before EsRegistryInit.
 */
void
_PG_init(void)
{
	EsPreloadInit();
	EsAppendInit();
	EsSubscriptionInit();
	EsWorkerInit();
	EsResultInit();
	EsCatalogInit();
	EsSlotInit();
	EsRegistryInit();
	MarkGUCPrefixReserved("eventstore");

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_shmem_startup;
}
