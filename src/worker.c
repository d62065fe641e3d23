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
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "eventstore.h"

#define ES_MAX_DB_WORKERS	16

/* Settings */
char	   *es_worker_databases = NULL;
int			es_worker_naptime = 1000;	/* ms */
int			es_worker_batch_size = 1000;

typedef struct EsWorkerSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pid_t		pid;
	Latch	   *latch;
	TimestampTz blocked_until;	/* DROP DATABASE in progress */
} EsWorkerSlot;

typedef struct EsWorkerShared
{
	slock_t		mutex;
	EsWorkerSlot slots[ES_MAX_DB_WORKERS];
} EsWorkerShared;

static EsWorkerShared *es_workers = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

PGDLLEXPORT void EsLauncherMain(Datum arg);
PGDLLEXPORT void EsDatabaseWorkerMain(Datum arg);

/* Shared memory of the workers. */
Size
EsWorkerShmemSize(void)
{
	return sizeof(EsWorkerShared);
}

/* Create or attach to the workers' shared memory. */
void
EsWorkerShmemInit(void)
{
	bool		found;

	es_workers = ShmemInitStruct("eventstore workers", sizeof(EsWorkerShared), &found);
	if (!found)
	{
		SpinLockInit(&es_workers->mutex);
		memset(es_workers->slots, 0, sizeof(es_workers->slots));
	}
}

/* Wake the worker of a database, if it runs.  Cheap; safe anywhere. */
void
EsWakeWorker(Oid dbid)
{
	if (es_workers == NULL)
		return;
	for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
	{
		EsWorkerSlot *slot = &es_workers->slots[i];

		if (slot->dbid == dbid && slot->latch != NULL)
			SetLatch(slot->latch);
	}
}

PG_FUNCTION_INFO_V1(eventstore_wake_worker);

/* SQL: _wake_worker() -- wake this database's projection worker */
Datum
eventstore_wake_worker(PG_FUNCTION_ARGS)
{
	EsWakeWorker(MyDatabaseId);
	PG_RETURN_VOID();
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
		free_slot->latch = NULL;
		free_slot->blocked_until = 0;
		return free_slot;
	}
	return NULL;
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
			SpinLockAcquire(&es_workers->mutex);
			{
				EsWorkerSlot *slot = es_worker_slot(dbid, false);

				if (slot != NULL)
				{
					slot->blocked_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60000);
					pid = slot->pid;
				}
			}
			SpinLockRelease(&es_workers->mutex);
			if (pid != 0)
			{
				kill(pid, SIGTERM);
				for (int i = 0; i < 500; i++)	/* up to 5 s */
				{
					bool		gone;

					SpinLockAcquire(&es_workers->mutex);
					gone = es_worker_slot(dbid, false) == NULL ||
						es_worker_slot(dbid, false)->pid != pid;
					SpinLockRelease(&es_workers->mutex);
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
		SpinLockAcquire(&es_workers->mutex);
		for (int i = 0; i < ES_MAX_DB_WORKERS; i++)
		{
			EsWorkerSlot *slot = &es_workers->slots[i];

			if (slot->dbid != InvalidOid && slot->pid == 0 && slot->blocked_until != 0 &&
				slot->blocked_until <= GetCurrentTimestamp())
				slot->dbid = InvalidOid;
		}
		SpinLockRelease(&es_workers->mutex);

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

			SpinLockAcquire(&es_workers->mutex);
			{
				EsWorkerSlot *slot = es_worker_slot(dbid, false);

				blocked = slot != NULL && slot->blocked_until > GetCurrentTimestamp();
			}
			SpinLockRelease(&es_workers->mutex);
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

/* Run one SQL statement with SPI in its own transaction. */
static void
es_worker_exec(const char *sql, int nargs, Oid *types, Datum *values, List **names)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) < 0)
		elog(ERROR, "unexpected SPI failure running \"%s\"", sql);
	if (names != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (uint64 i = 0; i < SPI_processed; i++)
			*names = lappend(*names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
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

/*
 * One batch of one projection (eventstore_internal.worker_run records handler
 * errors itself).  Returns the number of events applied, or -1 after
 * recording an unexpected error (the batch rolled back).
 */
static int64
es_worker_run_one(const char *name, MemoryContext cxt)
{
	int64		applied = 0;
	Oid			types[3] = {TEXTOID, INT4OID, INT4OID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(es_worker_batch_size);
	values[2] = Int32GetDatum(es_worker_naptime);

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "eventstore_internal.worker_run");
		if (SPI_execute_with_args("SELECT eventstore_internal.worker_run($1, $2, $3)", 3, types, values,
								  NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "unexpected SPI failure running projection \"%s\"", name);
		{
			bool		isnull;

			applied = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata = es_worker_catch(cxt);
		Oid			ftypes[3] = {TEXTOID, TEXTOID, INT4OID};
		Datum		fvalues[3];

		if (es_worker_report(edata))
		{
			fvalues[0] = values[0];
			fvalues[1] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
			fvalues[2] = Int32GetDatum(es_worker_naptime);
			es_worker_exec("SELECT eventstore_internal.worker_failed($1, $2, $3)", 3, ftypes, fvalues, NULL);
		}
		FreeErrorData(edata);
		applied = -1;
	}
	PG_END_TRY();
	return applied;
}

/* Has the current database got the extension? */
static bool
es_extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("eventstore", true));
	CommitTransactionCommand();
	return installed;
}

/* Leave the shared slot when exiting. */
static void
es_worker_exit(int code pg_attribute_unused(), Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);

	SpinLockAcquire(&es_workers->mutex);
	{
		EsWorkerSlot *slot = es_worker_slot(dbid, false);

		if (slot != NULL && slot->pid == MyProcPid)
		{
			slot->pid = 0;
			slot->latch = NULL;
			if (slot->blocked_until == 0)
				slot->dbid = InvalidOid;
		}
	}
	SpinLockRelease(&es_workers->mutex);
}

/* A database's worker: run due async projections until told to stop. */
void
EsDatabaseWorkerMain(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&es_workers->mutex);
	{
		EsWorkerSlot *slot = es_worker_slot(dbid, true);

		if (slot == NULL || slot->pid != 0)
		{
			SpinLockRelease(&es_workers->mutex);
			proc_exit(0);		/* no room, or another worker serves it */
		}
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
	}
	SpinLockRelease(&es_workers->mutex);
	before_shmem_exit(es_worker_exit, arg);

	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "eventstore worker", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		volatile bool busy = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(cxt);

		/*
		 * An error outside a batch is logged and the round tried again
		 * later: the worker does not exit.  (DROP EXTENSION committing
		 * between the check and the round is not logged as an error.)
		 */
		PG_TRY();
		{
			if (es_extension_installed())
			{
				List	   *due = NIL;
				ListCell   *lc;

				es_worker_exec("SELECT eventstore_internal.worker_due()", 0, NULL, NULL, &due);
				elog(DEBUG1, "eventstore worker: %d projections due", list_length(due));
				foreach(lc, due)
				{
					elog(DEBUG1, "eventstore worker: running projection \"%s\"", (char *) lfirst(lc));
					if (es_worker_run_one((char *) lfirst(lc), cxt) >= es_worker_batch_size)
						busy = true;
					CHECK_FOR_INTERRUPTS();
				}
				list_free_deep(due);
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata = es_worker_catch(cxt);

			(void) es_worker_report(edata);
			FreeErrorData(edata);
			busy = false;
		}
		PG_END_TRY();

		if (!busy)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 es_worker_naptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
