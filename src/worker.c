/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers that run async projections.
 *
 * The launcher is connected to no database; every worker_naptime it
 * starts one worker for each database named in eventstore.worker_databases
 * that exists and has none running.  A database worker runs every due
 * async projection a batch at a time, each batch in its own transaction
 * (eventstore.run_projection: handler effects and checkpoint commit
 * together, so exactly once).  A failing batch is rolled back and its
 * error recorded with a retry time (exponential backoff); other
 * projections keep going.  Appending transactions wake their database's
 * worker at commit, so projections follow appends promptly; the naptime
 * is only the fallback.
 *
 * Wake-ups are cheap and coalesced: the worker publishes in its shared
 * slot whether its database has async projections due (appends wake it
 * only then), and an appender signals only when no wake-up is pending
 * since the worker began its last round.  A batch has a time limit
 * (eventstore.handler_timeout, or the projection's own): past it the
 * batch is canceled, rolled back and recorded as an error with backoff,
 * so one hanging handler delays the others by at most its limit, and
 * projections with errors run last in a round.  drop_projection,
 * reset_projection and alter_projection first make the worker skip that
 * projection until their transaction ends and cancel its running batch
 * (eventstore_internal.worker_cancel), so they never wait for the worker.
 *
 * The slots are guarded by one LWLock; a backend signals the worker
 * through the PGPROC it published there, under that lock.
 *
 * DROP DATABASE waits for no one: a ProcessUtility hook stops the
 * database's worker first and keeps the launcher from restarting it for a
 * minute.  A worker whose database lacks the extension idles.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "projection_batch.h"
#include "registry.h"
#include "worker.h"

#define ES_MAX_DB_WORKERS	16

/* How long drop/reset/alter_projection wait for the worker to let go. */
#define ES_CANCEL_WAIT_MS	10000

/* Settings */
char	   *es_worker_databases = NULL;
int			es_worker_naptime = 1000;	/* ms */
int			es_worker_batch_size = 1000;
int			es_handler_timeout = 60000; /* ms; 0: no limit */

/*
 * A database's worker.  Every field is read and written under
 * EsWorkerShared.lock, except wake_pending (atomic: appenders flip it
 * holding the lock shared).
 */
typedef struct EsWorkerSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pid_t		pid;
	PGPROC	   *proc;			/* the running worker's, else NULL */
	TimestampTz blocked_until;	/* DROP DATABASE in progress */
	bool		wants_appends;	/* async projections are due: appends wake it */
	pg_atomic_uint32 wake_pending;	/* woken since its last round began */
	uint64		batch;			/* number of the batch running or last run */
	uint64		cancel_batch;	/* batch a backend asked it to abandon */
	char		running[NAMEDATALEN];	/* projection of the batch running, or "" */
	char		held[NAMEDATALEN];	/* projection not to run, or "" ... */
	pid_t		held_by;		/* ... until this backend's transaction ends */
} EsWorkerSlot;

typedef struct EsWorkerShared
{
	int			tranche;
	LWLock		lock;
	EsWorkerSlot slots[ES_MAX_DB_WORKERS];
} EsWorkerShared;

static EsWorkerShared *es_workers = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* This backend's wishes, carried out or dropped at transaction end. */
static bool es_wake_at_commit = false;
static bool es_wake_for_appends = false;
static bool es_holding = false;

/* In a database worker: its slot, and the time limit of its batches. */
static EsWorkerSlot *es_my_slot = NULL;
static TimeoutId es_batch_timeout;
static volatile sig_atomic_t es_batch_timed_out = false;

PGDLLEXPORT void EsLauncherMain(Datum arg);
PGDLLEXPORT void EsDatabaseWorkerMain(Datum arg);

/* Shared memory of the workers. */
Size
EsWorkerShmemSize(void)
{
	return sizeof(EsWorkerShared);
}

/* Create or attach to the workers' shared memory and name its lock. */
void
EsWorkerShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_workers = ShmemInitStruct("eventstore workers", sizeof(EsWorkerShared), &found);
	if (!found)
	{
		memset(es_workers, 0, sizeof(EsWorkerShared));
		es_workers->tranche = LWLockNewTrancheId();
		LWLockInitialize(&es_workers->lock, es_workers->tranche);
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
			pg_atomic_init_u32(&es_workers->slots[i].wake_pending, 0);
	}
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(es_workers->tranche, "eventstore_worker");
}

/*
 * Wake the worker of a database, if it runs; with force, even when it has
 * published that it waits for no append.  The PGPROC is read and its
 * latch set under the lock, so the worker cannot leave in between; a
 * wake-up already pending since its last round began is not repeated.
 * Cheap (a shared lock, no system call when coalesced); safe anywhere,
 * including commit callbacks.
 */
static void
es_wake(Oid dbid, bool force)
{
	if (es_workers == NULL)
		return;
	LWLockAcquire(&es_workers->lock, LW_SHARED);
	for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
	{
		EsWorkerSlot *slot = &es_workers->slots[i];

		if (slot->dbid == dbid && slot->proc != NULL && (force || slot->wants_appends) &&
			pg_atomic_exchange_u32(&slot->wake_pending, 1) == 0)
			SetLatch(&slot->proc->procLatch);
	}
	LWLockRelease(&es_workers->lock);
}

/*
 * Is this database listed in eventstore.worker_databases (as this
 * backend sees the setting), the way the launcher compares names?
 */
static bool
es_database_served(void)
{
	char	   *raw;
	char	   *dbname;
	List	   *names = NIL;
	ListCell   *lc;
	bool		served = false;

	if (es_workers == NULL)
		return false;			/* not preloaded: no launcher */
	dbname = get_database_name(MyDatabaseId);
	raw = pstrdup(es_worker_databases ? es_worker_databases : "");
	if (dbname != NULL && SplitIdentifierString(raw, ',', &names))
	{
		foreach(lc, names)
		{
			if (strcmp((char *) lfirst(lc), dbname) == 0)
				served = true;
		}
	}
	list_free(names);
	pfree(raw);
	return served;
}

PG_FUNCTION_INFO_V1(eventstore_wake_worker);

/*
 * SQL: _wake_worker() -- wake this database's projection worker when the
 * transaction commits (an async projection was created or reset: before
 * the commit the worker would not see it), and warn when no worker
 * serves this database, since its async projections would then never
 * run by themselves.
 */
Datum
eventstore_wake_worker(PG_FUNCTION_ARGS)
{
	es_wake_at_commit = true;
	if (!es_database_served())
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("no projection worker serves database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("Its async projections run only when run_projection is called."),
				 errhint("Add the database to \"eventstore.worker_databases\" and reload the configuration.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(eventstore_worker_serves);

/* SQL: eventstore.worker_serves() -- is this database listed in eventstore.worker_databases? */
Datum
eventstore_worker_serves(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(es_database_served());
}

/* Find the slot of a database, optionally claiming a free one. */
static EsWorkerSlot *
es_worker_slot(Oid dbid, bool claim)
{
	EsWorkerSlot *free_slot = NULL;

	for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
	{
		EsWorkerSlot *slot = &es_workers->slots[i];

		if (slot->dbid == dbid)
			return slot;
		if (slot->dbid == InvalidOid && free_slot == NULL)
			free_slot = slot;
	}
	if (claim && free_slot != NULL)
	{
		free_slot->dbid = dbid;
		free_slot->pid = 0;
		free_slot->proc = NULL;
		free_slot->blocked_until = 0;
		free_slot->wants_appends = false;
		free_slot->batch = 0;
		free_slot->cancel_batch = 0;
		free_slot->running[0] = '\0';
		free_slot->held[0] = '\0';
		free_slot->held_by = 0;
		return free_slot;
	}
	return NULL;
}

PG_FUNCTION_INFO_V1(eventstore_worker_cancel);

/*
 * SQL: _worker_cancel(name) -- internal, for drop/reset/alter_projection,
 * before they lock the projection's row: this database's worker runs no
 * batch of that projection until the calling transaction ends (the worker
 * is woken at commit to look again), and a batch it runs now is canceled
 * (SIGINT, sent under the lock while the batch is known to be that one's)
 * and waited for, at most ES_CANCEL_WAIT_MS; so the caller never waits for
 * the worker's row lock, however long the handler would run.
 */
Datum
eventstore_worker_cancel(PG_FUNCTION_ARGS)
{
	char	   *name;
	uint64		batch = 0;
	TimestampTz start;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("projection name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (es_workers == NULL)
		PG_RETURN_VOID();
	es_wake_at_commit = true;

	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	{
		EsWorkerSlot *slot = es_worker_slot(MyDatabaseId, false);

		if (slot != NULL && slot->proc != NULL)
		{
			strlcpy(slot->held, name, NAMEDATALEN);
			slot->held_by = MyProcPid;
			es_holding = true;
			if (strcmp(slot->running, name) == 0)
			{
				batch = slot->batch;
				slot->cancel_batch = batch;
				if (kill(slot->pid, SIGINT) != 0)
					batch = 0;	/* it is gone */
			}
		}
	}
	LWLockRelease(&es_workers->lock);
	if (batch == 0)
		PG_RETURN_VOID();

	start = GetCurrentTimestamp();
	for (;;)
	{
		bool		done;

		LWLockAcquire(&es_workers->lock, LW_SHARED);
		{
			EsWorkerSlot *slot = es_worker_slot(MyDatabaseId, false);

			done = slot == NULL || slot->proc == NULL || slot->batch != batch ||
				slot->running[0] == '\0';
		}
		LWLockRelease(&es_workers->lock);
		if (done)
			break;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), ES_CANCEL_WAIT_MS))
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("projection \"%s\" is busy", name),
					 errdetail("The projection worker did not abandon its batch within %d seconds.",
							   ES_CANCEL_WAIT_MS / 1000),
					 errhint("Try again; the worker runs no new batch of it meanwhile.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_VOID();
}

/*
 * Transaction end: wake the worker if the transaction asked to, or
 * appended events (only at commit: before, the worker would not see what
 * it changed), and let the worker run again the projection this
 * transaction held.
 *
 * Whether it appended is asked at PRE_COMMIT, while the registry still
 * holds its positions; the wake-up for appends comes at COMMIT after the
 * registry released them, or a worker woken at once would read a horizon
 * this transaction still holds back.  That order holds because this
 * callback is registered before the registry's (EsWorkerInit runs first
 * in _PG_init) and PostgreSQL calls the latest registered first.
 */
static void
es_worker_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			es_wake_for_appends = EsRegistryHoldsPositions();
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	if (es_holding && es_workers != NULL)
	{
		LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
		{
			EsWorkerSlot *slot = &es_workers->slots[i];

			if (slot->held_by == MyProcPid)
			{
				slot->held[0] = '\0';
				slot->held_by = 0;
			}
		}
		LWLockRelease(&es_workers->lock);
	}
	es_holding = false;
	if (es_wake_at_commit && event == XACT_EVENT_COMMIT)
		es_wake(MyDatabaseId, true);
	else if (es_wake_for_appends && event == XACT_EVENT_COMMIT)
	{
		Assert(!EsRegistryHoldsPositions());
		es_wake(MyDatabaseId, false);
	}
	es_wake_at_commit = false;
	es_wake_for_appends = false;
}

/*
 * DROP DATABASE: stop that database's worker and keep it stopped for a
 * minute, so the drop does not fail on "being accessed by other users".
 */
static void
es_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	/*
	 * Only for a DROP DATABASE that can succeed: by the database's owner,
	 * outside a transaction block.  Anyone else must not be able to stop
	 * another database's worker.
	 */
	if (es_workers != NULL && IsA(parsetree, DropdbStmt) && !IsTransactionBlock())
	{
		Oid			dbid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
		pid_t		pid = 0;

#if PG_VERSION_NUM >= 160000
		if (OidIsValid(dbid) && object_ownercheck(DatabaseRelationId, dbid, GetUserId()))
#else
		if (OidIsValid(dbid) && pg_database_ownercheck(dbid, GetUserId()))
#endif
		{
			LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
			{
				EsWorkerSlot *slot = es_worker_slot(dbid, false);

				if (slot != NULL)
				{
					slot->blocked_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60000);
					pid = slot->pid;
				}
			}
			LWLockRelease(&es_workers->lock);
			if (pid != 0)
			{
				kill(pid, SIGTERM);
				for (int i = 0; i < 500; i++)	/* up to 5 s */
				{
					bool		gone;

					LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
					gone = es_worker_slot(dbid, false) == NULL ||
						es_worker_slot(dbid, false)->pid != pid;
					LWLockRelease(&es_workers->lock);
					if (gone)
						break;
					CHECK_FOR_INTERRUPTS();
					pg_usleep(10000);
				}
			}
		}
	}

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Define the settings and register the launcher (from _PG_init). */
void
EsWorkerInit(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("eventstore.worker_databases",
							   "Databases whose async projections the background worker runs.",
							   "A comma-separated list of database names; empty runs none.",
							   &es_worker_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("eventstore.worker_naptime",
							"Longest time the projection worker sleeps between rounds.",
							"Appends wake it at once; this is the fallback and the launcher's period.",
							&es_worker_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventstore.worker_batch_size",
							"Events one async projection applies per transaction.",
							NULL,
							&es_worker_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventstore.handler_timeout",
							"Longest time one batch of an async projection may run in the worker.",
							"A batch running longer is canceled, rolled back and recorded as the "
							"projection's error; 0 means no limit.  alter_projection sets a "
							"projection's own limit.",
							&es_handler_timeout,
							60000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	RegisterXactCallback(es_worker_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = es_process_utility;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "eventstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "EsLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "eventstore launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * OIDs of the listed databases that exist.  The launcher has no database,
 * so it may only heap-scan shared catalogs (their indexes may need pg_class).
 */
static List *
es_listed_databases(List *names)
{
	List	   *oids = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	if (names == NIL)
		return NIL;
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		ListCell   *lc;

		foreach(lc, names)
		{
			if (strcmp(NameStr(db->datname), (char *) lfirst(lc)) == 0 && db->datallowconn)
				oids = lappend_oid(oids, db->oid);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return oids;
}

/* Launcher: keep one worker running per listed, existing database. */
void
EsLauncherMain(Datum arg pg_attribute_unused())
{
	BackgroundWorkerHandle *handles[ES_MAX_DB_WORKERS] = {0};
	Oid			handle_db[ES_MAX_DB_WORKERS] = {0};
	TimestampTz started_at[ES_MAX_DB_WORKERS] = {0};
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "eventstore launcher", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		List	   *names = NIL;
		List	   *wanted;
		ListCell   *lc;
		char	   *raw;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(cxt);
		MemoryContextSwitchTo(cxt);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		raw = pstrdup(es_worker_databases ? es_worker_databases : "");
		if (!SplitIdentifierString(raw, ',', &names))
		{
			ereport(LOG,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid list syntax in \"eventstore.worker_databases\"")));
			names = NIL;
		}
		wanted = es_listed_databases(names);
		MemoryContextSwitchTo(cxt);

		/* free the slots of finished DROP DATABASEs */
		LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
		{
			EsWorkerSlot *slot = &es_workers->slots[i];

			if (slot->dbid != InvalidOid && slot->pid == 0 && slot->blocked_until != 0 &&
				slot->blocked_until <= GetCurrentTimestamp())
				slot->dbid = InvalidOid;
		}
		LWLockRelease(&es_workers->lock);

		/* forget stopped workers; stop the ones no longer wanted */
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
		{
			pid_t		pid;

			if (handles[i] == NULL)
				continue;
			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			{
				pfree(handles[i]);
				handles[i] = NULL;
			}
			else if (!list_member_oid(wanted, handle_db[i]))
				TerminateBackgroundWorker(handles[i]);
		}
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
		{
			if (handles[i] == NULL && handle_db[i] != InvalidOid &&
				!list_member_oid(wanted, handle_db[i]))
				handle_db[i] = InvalidOid;
		}

		/* start the missing ones */
		foreach(lc, wanted)
		{
			Oid			dbid = lfirst_oid(lc);
			int			free_i = -1;
			bool		running = false;
			bool		blocked;
			bool		registered;
			BackgroundWorker worker;

			for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
			{
				if (handle_db[i] != dbid)
					continue;
				if (handles[i] != NULL)
					running = true;
				else
					free_i = i;		/* reuse its entry: it knows the last start */
			}
			for (int i = 0; i < ES_MAX_DB_WORKERS && free_i < 0 && !running; i++)
				if (handles[i] == NULL && handle_db[i] == InvalidOid)
					free_i = i;
			if (running || free_i < 0)
				continue;
			/* a worker that stopped soon after starting waits 10 s to restart */
			if (handle_db[free_i] == dbid &&
				!TimestampDifferenceExceeds(started_at[free_i], GetCurrentTimestamp(), 10000))
				continue;

			LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
			{
				EsWorkerSlot *slot = es_worker_slot(dbid, false);

				blocked = slot != NULL && slot->blocked_until > GetCurrentTimestamp();
			}
			LWLockRelease(&es_workers->lock);
			if (blocked)
				continue;

			memset(&worker, 0, sizeof(worker));
			worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
			worker.bgw_restart_time = BGW_NEVER_RESTART;
			snprintf(worker.bgw_library_name, BGW_MAXLEN, "eventstore");
			snprintf(worker.bgw_function_name, BGW_MAXLEN, "EsDatabaseWorkerMain");
			snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore projection worker %u", dbid);
			snprintf(worker.bgw_type, BGW_MAXLEN, "eventstore projection worker");
			worker.bgw_main_arg = ObjectIdGetDatum(dbid);
			worker.bgw_notify_pid = MyProcPid;
			MemoryContextSwitchTo(TopMemoryContext);	/* handles outlive cxt */
			registered = RegisterDynamicBackgroundWorker(&worker, &handles[free_i]);
			MemoryContextSwitchTo(cxt);
			if (registered)
			{
				handle_db[free_i] = dbid;
				started_at[free_i] = GetCurrentTimestamp();
			}
			else
				ereport(LOG,
						(errmsg("could not start the eventstore projection worker for database %u", dbid),
						 errhint("Raise \"max_worker_processes\".")));
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 es_worker_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* An async projection the worker found due, and its batches' time limit. */
typedef struct EsDue
{
	char	   *name;
	int			timeout_ms;		/* -1: eventstore.handler_timeout */
} EsDue;

/*
 * Run one SQL statement with SPI in its own transaction.  The caller's
 * memory context is current again on return.
 */
static void
es_worker_exec(const char *sql, int nargs, Oid *types, Datum *values)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) < 0)
		elog(ERROR, "unexpected SPI failure running \"%s\"", sql);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Has the current database the extension, at a version this library runs
 * (0.1.0's objects have no eventstore_internal: the worker idles there
 * until ALTER EXTENSION eventstore UPDATE)?  In a transaction.
 */
static bool
es_extension_current(void)
{
	return OidIsValid(get_extension_oid("eventstore", true)) &&
		OidIsValid(get_namespace_oid("eventstore_internal", true));
}

/*
 * One transaction: has the database the extension, and if so which async
 * projections are due (eventstore_internal.worker_due, in the order to run them)?
 * The list is built in the caller's memory context, current again on
 * return.  An idle round is this one transaction.
 */
static bool
es_worker_due(List **due)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = es_extension_current();
	if (installed)
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "eventstore_internal.worker_due");
		if (SPI_execute("SELECT name, timeout_ms FROM eventstore_internal.worker_due()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "unexpected SPI failure running eventstore_internal.worker_due");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *name = SPI_getvalue(tup, desc, 1);
			bool		isnull;
			Datum		timeout = SPI_getbinval(tup, desc, 2, &isnull);
			MemoryContext spi = MemoryContextSwitchTo(cxt);
			EsDue	   *d = palloc(sizeof(EsDue));

			d->name = pstrdup(name);
			d->timeout_ms = isnull ? -1 : DatumGetInt32(timeout);
			*due = lappend(*due, d);
			MemoryContextSwitchTo(spi);
		}
		SPI_finish();
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return installed;
}

static bool es_extension_installed(void);

/*
 * In a PG_CATCH block: take the error off the error stack (a copy, in
 * cxt) and abort the transaction it came from, so the worker can go on.
 */
static ErrorData *
es_worker_catch(MemoryContext cxt)
{
	ErrorData  *edata;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(cxt);
	RESUME_INTERRUPTS();
	return edata;
}

/*
 * Report an error the worker caught and goes on after (its transaction
 * aborted already): as a WARNING, since the worker does not stop -- or
 * only at DEBUG1 when the extension was dropped meanwhile (the error is
 * then about its dropped objects, and the worker idles until it is
 * created again).  Returns whether the extension is still installed.
 */
static bool
es_worker_report(ErrorData *edata)
{
	if (!es_extension_installed())
	{
		elog(DEBUG1, "eventstore worker: the extension was dropped during a round (%s)",
			 edata->message ? edata->message : "unknown error");
		return false;
	}
	edata->elevel = WARNING;
	ThrowErrorData(edata);
	return true;
}

/* Timer of a batch (signal handler): cancel it, as a statement timeout would. */
static void
es_batch_timeout_handler(void)
{
	es_batch_timed_out = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * Publish the batch about to run, unless a backend holds that projection
 * (drop/reset/alter_projection in progress).  Sets *batch to its number.
 */
static bool
es_batch_begin(const char *name, uint64 *batch)
{
	bool		held;

	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	held = es_my_slot->held[0] != '\0' && strcmp(es_my_slot->held, name) == 0;
	if (!held)
	{
		strlcpy(es_my_slot->running, name, NAMEDATALEN);
		*batch = ++es_my_slot->batch;
	}
	LWLockRelease(&es_workers->lock);
	return !held;
}

/* The batch is over; was it asked to be abandoned? */
static bool
es_batch_end(uint64 batch)
{
	bool		canceled;

	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	es_my_slot->running[0] = '\0';
	canceled = es_my_slot->cancel_batch == batch;
	LWLockRelease(&es_workers->lock);
	return canceled;
}

/*
 * One batch of one projection (EsProjectionWorkerBatch records handler
 * errors itself), within its time limit.  Returns the number of events
 * applied, or -1 when the batch rolled back: an unexpected error or the
 * time limit, recorded with a retry time, or a cancel (by a backend
 * dropping, resetting or altering the projection, or by an administrator),
 * not recorded: the projection is simply run again later.
 */
static int64
es_worker_run_one(const EsDue *due, MemoryContext cxt)
{
	int64		applied = 0;
	Datum		values[1];
	int			timeout_ms = due->timeout_ms >= 0 ? due->timeout_ms : es_handler_timeout;
	uint64		batch;

	Assert(CurrentMemoryContext == cxt);
	if (!es_batch_begin(due->name, &batch))
		return 0;
	values[0] = CStringGetTextDatum(due->name);
	es_batch_timed_out = false;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "eventstore_internal.worker_run");
		if (timeout_ms > 0)
			enable_timeout_after(es_batch_timeout, timeout_ms);
		/* projection_batch.c: handler errors are recorded there */
		applied = EsProjectionWorkerBatch(due->name, es_worker_batch_size, es_worker_naptime);
		disable_timeout(es_batch_timeout, false);
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) es_batch_end(batch);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		requested;
		const char *message = NULL;

		disable_timeout(es_batch_timeout, false);
		edata = es_worker_catch(cxt);
		requested = es_batch_end(batch);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && es_batch_timed_out)
		{
			message = psprintf("the batch exceeded the time limit of %d ms (eventstore.handler_timeout or the projection's handler_timeout) and was canceled",
							   timeout_ms);
			ereport(WARNING,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("eventstore worker: projection \"%s\": %s", due->name, message)));
		}
		else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ereport(requested ? DEBUG1 : LOG,
					(errmsg("eventstore worker: the batch of projection \"%s\" was canceled%s",
							due->name, requested ? " on request" : ""),
					 errdetail("It will run again later.")));
		else if (es_worker_report(edata))
			message = edata->message ? edata->message : "unknown error";
		if (message != NULL)
		{
			Oid			ftypes[3] = {TEXTOID, TEXTOID, INT4OID};
			Datum		fvalues[3];

			fvalues[0] = values[0];
			fvalues[1] = CStringGetTextDatum(message);
			fvalues[2] = Int32GetDatum(es_worker_naptime);
			es_worker_exec("SELECT eventstore_internal.worker_failed($1, $2, $3)", 3, ftypes, fvalues);
		}
		FreeErrorData(edata);
		applied = -1;
	}
	PG_END_TRY();

	/* a timer that fired after the batch was over has nothing to cancel */
	if (es_batch_timed_out)
		QueryCancelPending = false;
	return applied;
}

/* Has the current database got the extension? */
static bool
es_extension_installed(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = es_extension_current();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return installed;
}

/* Publish whether appends should wake this worker (only when it changes). */
static void
es_publish_wants_appends(bool wants)
{
	static bool published = false;

	if (wants == published)
		return;
	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	es_my_slot->wants_appends = wants;
	LWLockRelease(&es_workers->lock);
	published = wants;
}

/* Leave the shared slot when exiting. */
static void
es_worker_exit(int code pg_attribute_unused(), Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);

	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	{
		EsWorkerSlot *slot = es_worker_slot(dbid, false);

		if (slot != NULL && slot->pid == MyProcPid)
		{
			slot->pid = 0;
			slot->proc = NULL;
			slot->wants_appends = false;
			slot->running[0] = '\0';
			if (slot->blocked_until == 0)
				slot->dbid = InvalidOid;
		}
	}
	LWLockRelease(&es_workers->lock);
}

/*
 * A database's worker: run due async projections until told to stop.
 * Each pass allocates in a loop context that is reset at its end, and
 * every transaction returns to it (pg_cron's pattern), so the worker's
 * memory does not grow with the number of rounds.
 */
void
EsDatabaseWorkerMain(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(&es_workers->lock, LW_EXCLUSIVE);
	{
		EsWorkerSlot *slot = es_worker_slot(dbid, true);

		if (slot == NULL || slot->pid != 0)
		{
			LWLockRelease(&es_workers->lock);
			proc_exit(0);		/* no room, or another worker serves it */
		}
		slot->pid = MyProcPid;
		slot->proc = MyProc;
		slot->wants_appends = false;
		slot->running[0] = '\0';
		es_my_slot = slot;
	}
	LWLockRelease(&es_workers->lock);
	before_shmem_exit(es_worker_exit, arg);

	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	es_batch_timeout = RegisterTimeout(USER_TIMEOUT, es_batch_timeout_handler);
	cxt = AllocSetContextCreate(TopMemoryContext, "eventstore worker", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		volatile bool busy = false;

		/* a cancel between batches (a late one) has nothing to cancel */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* wake-ups from now on are for this round's successor */
		(void) pg_atomic_exchange_u32(&es_my_slot->wake_pending, 0);

		/*
		 * An error outside a batch is logged and the round tried again
		 * later: the worker does not exit.  (DROP EXTENSION committing
		 * between the check and the round is not logged as an error.)
		 */
		PG_TRY();
		{
			List	   *due = NIL;
			ListCell   *lc;
			bool		installed = es_worker_due(&due);

			if (installed)
				elog(DEBUG1, "eventstore worker: %d projections due", list_length(due));
			es_publish_wants_appends(installed && due != NIL);
			foreach(lc, due)
			{
				EsDue	   *d = (EsDue *) lfirst(lc);

				elog(DEBUG1, "eventstore worker: running projection \"%s\"", d->name);
				if (es_worker_run_one(d, cxt) >= es_worker_batch_size)
					busy = true;
				CHECK_FOR_INTERRUPTS();
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata = es_worker_catch(cxt);

			(void) es_worker_report(edata);
			busy = false;
		}
		PG_END_TRY();

		Assert(CurrentMemoryContext == cxt);
		MemoryContextReset(cxt);
		if (!busy)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 es_worker_naptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
