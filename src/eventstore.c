/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *	  Module entry: _PG_init, settings, shared memory hooks, and the
 *	  small SQL helpers that belong to no other file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "eventstore.h"

PG_MODULE_MAGIC;

/* eventstore.max_event_size: bytes of data + metadata per event */
int			es_max_event_size = 1024 * 1024;

/* eventstore.debug_skip_registry: benchmark-only switch */
bool		es_debug_skip_registry = false;

/* true when the library was loaded through shared_preload_libraries */
bool		es_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* Ask for the shared memory of the in-flight registry. */
static void
es_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(EsRegistryShmemSize());
	RequestAddinShmemSpace(EsWorkerShmemSize());
}

/* Create or attach to the in-flight registry. */
static void
es_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	EsRegistryShmemInit();
	EsWorkerShmemInit();
}

/*
 * Module load.  Settings are defined whenever the library is loaded; the
 * shared memory and its hooks only when it is preloaded.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("eventstore.max_event_size",
							"Largest accepted event (data plus metadata, as stored).",
							"Appends of a larger event fail with SQLSTATE 54000.",
							&es_max_event_size,
							1024 * 1024,
							1024,
							MaxAllocSize / 2,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("eventstore.debug_skip_registry",
							 "Benchmarks only: appends skip the in-flight registry.",
							 "Measures the cost of the gap-safe feed.  While on, global "
							 "reads may skip events committed out of position order.",
							 &es_debug_skip_registry,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	EsWorkerInit();
	MarkGUCPrefixReserved("eventstore");

	EsCatalogRegisterCallbacks();

	if (!process_shared_preload_libraries_in_progress)
		return;

	es_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_shmem_startup;
	EsRegistryRegisterCallbacks();
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

/* The category of a stream name: a new text, the part before the first '-'. */
text *
EsCategoryOf(text *stream)
{
	const char *s = VARDATA_ANY(stream);
	int			len = VARSIZE_ANY_EXHDR(stream);
	const char *dash = memchr(s, '-', len);

	return cstring_to_text_with_len(s, dash == NULL ? len : dash - s);
}

PG_FUNCTION_INFO_V1(eventstore_prevent_in_transaction_block);

/*
 * SQL: _prevent_in_transaction_block(what) -- for create_subscription and
 * drop_subscription.  Their slot work follows the transaction (slot.c), but
 * a new logical slot waits for every transaction with writes to end and
 * cannot be created once its own transaction has written, so both run as
 * statements of their own.
 */
Datum
eventstore_prevent_in_transaction_block(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (IsTransactionBlock() || IsSubTransaction())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block", what),
				 errdetail("It creates or drops a replication slot, in a transaction of its own."),
				 errhint("Call it on its own, outside BEGIN ... COMMIT.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(eventstore_flush_wal);

/*
 * SQL: _flush_wal() -- make every commit so far durable.  poll calls it
 * before moving a slot: with synchronous_commit = off, the checkpoint it
 * moves the slot to might otherwise not survive a crash, while the slot's
 * new position would, and events would be skipped.  No cost when WAL is
 * already flushed.
 */
Datum
eventstore_flush_wal(PG_FUNCTION_ARGS pg_attribute_unused())
{
	XLogRecPtr	upto = GetXLogInsertRecPtr();
	uint32		off = upto % XLOG_BLCKSZ;

	/*
	 * When nothing was inserted on the current page yet, the insert
	 * position points just past its header, which is not written: flush to
	 * the page's start, where the last record ended.
	 */
	if (off == SizeOfXLogShortPHD ||
		(off == SizeOfXLogLongPHD &&
		 XLogSegmentOffset(upto, wal_segment_size) == SizeOfXLogLongPHD))
		upto -= off;
	XLogFlush(upto);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(eventstore_category);

/* SQL: category(stream) -- the part of the name before the first '-'. */
Datum
eventstore_category(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(EsCategoryOf(PG_GETARG_TEXT_PP(0)));
}
