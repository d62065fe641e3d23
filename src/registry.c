/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  The in-flight registry behind the gap-safe global feed.
 *
 * Global positions come from a sequence when an event is inserted, but an
 * event becomes visible when its transaction commits, so positions become
 * visible out of order.  A reader that checkpoints "the last position I
 * saw" would skip an event committed late with a lower position.
 *
 * Every backend owns one slot in shared memory.  Before its transaction
 * takes its first position, a backend marks its slot RESERVING; once it
 * has the position, it publishes it as the slot's min_position and marks
 * the slot HELD.  The slot is cleared when the transaction ends, from the
 * XACT_EVENT_COMMIT/ABORT callback, which runs after the commit became
 * visible in the proc array.
 *
 * A reader computes the safe horizon as
 *
 *		h = min(last allocated position, min_position - 1 of each HELD slot)
 *
 * reading the sequence first and the slots second, and only then takes
 * the snapshot it reads with.  Every position <= h belongs to a
 * transaction that had already ended when the slots were scanned (an
 * appender that reserved after the sequence was read gets a larger
 * position), so the snapshot sees it committed or it was rolled back.
 * A slot seen RESERVING may be about to publish a position <= h: the
 * reader waits the few instructions until it is HELD.  (A Dekker-style
 * handshake: each side writes its own flag, issues a full barrier, then
 * reads the other side's.)
 *
 * Only appending transactions hold the horizon back; a transaction that
 * appended in an aborted subtransaction keeps holding it until its top
 * level ends, which is merely conservative.  Slots of other databases are
 * ignored.
 *
 * A RESERVING slot must not outlive the nextval call it announces: a
 * first nextval that fails in a subtransaction (lock_timeout, cancel, the
 * sequence's limit), whose top level then goes on after ROLLBACK TO
 * SAVEPOINT, would otherwise make every reader wait until the top level
 * ends.  So the abort of the subtransaction that reserved puts the slot
 * back to FREE.  That is safe: an event only ever carries a position that
 * EsAllocatePosition returned, and this one returned none (nextval either
 * fails before it changes the sequence or changes it in a critical
 * section and returns), so nothing this reservation announced can become
 * visible; a later allocation reserves again, under the same handshake.
 * Once the slot is HELD, later allocations of the transaction never
 * reserve, so no abort of a later subtransaction touches a slot that an
 * earlier, surviving position holds.
 *
 * A crashed backend takes the whole cluster through crash restart, which
 * rebuilds shared memory; two-phase commit is refused for appending
 * transactions, so nothing in flight survives a restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "preload.h"
#include "registry.h"

#define ES_SLOT_FREE		0
#define ES_SLOT_RESERVING	1
#define ES_SLOT_HELD		2

typedef struct EsInflightSlot
{
	pg_atomic_uint32 state;		/* ES_SLOT_* */
	Oid			dbid;			/* database of the appending transaction */
	pg_atomic_uint64 min_position;	/* lowest position it holds, if HELD */
} EsInflightSlot;

typedef struct EsRegistry
{
	int			nslots;
	EsInflightSlot slots[FLEXIBLE_ARRAY_MEMBER];
} EsRegistry;

#ifdef EVENTSTORE_BENCHMARK
/* eventstore.debug_skip_registry: benchmark builds only */
bool		es_debug_skip_registry = false;
#endif

static EsRegistry *es_registry = NULL;

/* This backend's slot, and whether the current transaction holds it. */
static EsInflightSlot *my_slot = NULL;
static bool my_slot_held = false;

/*
 * While the slot is RESERVING, the subtransaction that reserved it (or
 * the parent it was released into); InvalidSubTransactionId otherwise.
 */
static SubTransactionId my_reserving_subid = InvalidSubTransactionId;

#if PG_VERSION_NUM >= 170000
#define ES_MY_PROCNO	MyProcNumber
#else
#define ES_MY_PROCNO	(MyProc->pgprocno)
#endif

/* One slot per PGPROC, so every backend and worker has its own. */
static int
es_registry_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

/* Shared memory needed by the registry. */
Size
EsRegistryShmemSize(void)
{
	return add_size(offsetof(EsRegistry, slots),
					mul_size(es_registry_nslots(), sizeof(EsInflightSlot)));
}

/* Create (postmaster) or attach to (EXEC_BACKEND children) the registry. */
void
EsRegistryShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_registry = ShmemInitStruct("eventstore in-flight registry",
								  EsRegistryShmemSize(), &found);
	if (!found)
	{
		int			n = es_registry_nslots();

		es_registry->nslots = n;
		for (int i = 0; i < n; i++)
		{
			pg_atomic_init_u32(&es_registry->slots[i].state, ES_SLOT_FREE);
			es_registry->slots[i].dbid = InvalidOid;
			pg_atomic_init_u64(&es_registry->slots[i].min_position, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Clear this backend's slot: the transaction no longer holds positions. */
static void
es_release_slot(void)
{
	if (!my_slot_held)
		return;
	pg_atomic_write_u32(&my_slot->state, ES_SLOT_FREE);
	my_slot_held = false;
	my_reserving_subid = InvalidSubTransactionId;
}

/*
 * Transaction end.  COMMIT and ABORT callbacks run after the proc array
 * says the transaction is over, so clearing here is safe for readers.
 * PREPARE is refused: a prepared transaction would hold its positions
 * with no backend to release them.  (The projection worker is woken at
 * commit by worker.c's own callback, which runs after this one: see
 * EsRegistryHoldsPositions.)
 */
static void
es_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (my_slot_held)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that appended events"),
						 errdetail("Two-phase commit would hold back the global feed with no session to release it."),
						 errhint("Commit the append in an ordinary transaction.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			es_release_slot();
			break;
		default:
			break;
	}
}

/*
 * Subtransaction end.  If the subtransaction that reserved the slot
 * aborts while it is still RESERVING, its nextval failed and no position
 * was handed out: clear the slot, so that readers neither wait for it nor
 * hold the horizon, and the next allocation reserves and publishes anew
 * (see the file header).  A subtransaction cannot commit while its
 * nextval is still running, so a release finds no reservation unless C
 * code swallowed nextval's error without rolling back; the parent then
 * inherits the reservation and its top level clears it, as before.
 */
static void
es_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	if (my_reserving_subid != mySubid)
		return;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			Assert(my_slot_held);
			Assert(pg_atomic_read_u32(&my_slot->state) == ES_SLOT_RESERVING);
			es_release_slot();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			my_reserving_subid = parentSubid;
			break;
		default:
			break;
	}
}

/* Backend exit: never leave a slot held behind. */
static void
es_shmem_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	es_release_slot();
}

/*
 * Define eventstore.debug_skip_registry (benchmark builds) and, when
 * preloaded, register the transaction callbacks (from _PG_init).
 */
void
EsRegistryInit(void)
{
#ifdef EVENTSTORE_BENCHMARK
	DefineCustomBoolVariable("eventstore.debug_skip_registry",
							 "Benchmarks only: appends skip the in-flight registry.",
							 "Measures the cost of the gap-safe feed.  While on, global "
							 "reads may skip events committed out of position order.",
							 &es_debug_skip_registry,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
#endif
	if (!process_shared_preload_libraries_in_progress)
		return;
	RegisterXactCallback(es_xact_callback, NULL);
	RegisterSubXactCallback(es_subxact_callback, NULL);
}

/*
 * Does the current transaction hold positions in the registry, that is,
 * did it append events?  True until the registry's own COMMIT or ABORT
 * callback clears the slot; worker.c asks at XACT_EVENT_PRE_COMMIT, to
 * wake the projection worker once the commit is visible.
 */
bool
EsRegistryHoldsPositions(void)
{
	return my_slot_held;
}

/*
 * Allocate the next global position for the current transaction.  The
 * first allocation of a transaction publishes it in this backend's slot
 * (see the file header for the protocol); later ones are larger and need
 * no publication.
 */
int64
EsAllocatePosition(const EsCatalog *cat)
{
	int64		position;

	if (es_registry == NULL)
		EsRequirePreloaded();

	if (my_slot_held || es_debug_skip_registry)
		return nextval_internal(cat->position_seq, false);

	if (my_slot == NULL)
	{
		int			procno = ES_MY_PROCNO;

		if (procno < 0 || procno >= es_registry->nslots)
			elog(ERROR, "unexpected proc number %d for eventstore registry", procno);
		my_slot = &es_registry->slots[procno];
		on_shmem_exit(es_shmem_exit, (Datum) 0);
	}

	my_slot->dbid = MyDatabaseId;
	pg_write_barrier();
	pg_atomic_write_u32(&my_slot->state, ES_SLOT_RESERVING);
	my_slot_held = true;
	my_reserving_subid = GetCurrentSubTransactionId();
	pg_memory_barrier();

	/*
	 * On error the abort callback of the transaction, or of the
	 * subtransaction that reserved, clears the slot.  Nothing between here
	 * and HELD can fail once nextval has returned.
	 */
	position = nextval_internal(cat->position_seq, false);

	pg_atomic_write_u64(&my_slot->min_position, (uint64) position);
	pg_write_barrier();
	pg_atomic_write_u32(&my_slot->state, ES_SLOT_HELD);
	my_reserving_subid = InvalidSubTransactionId;
	return position;
}

/*
 * Last position handed out by the sequence, 0 if none ever was.  Read as
 * the sequence's owner: pg_sequence_last_value checks SELECT on it, and
 * no application role has (nor needs) a privilege on the sequence.
 */
static int64
es_last_allocated(const EsCatalog *cat)
{
	LOCAL_FCINFO(fcinfo, 1);
	volatile Datum result = (Datum) 0;
	Oid			save_userid;
	int			save_sec_context;
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(cat->position_seq));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", cat->position_seq);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(cat->position_seq);
	fcinfo->args[0].isnull = false;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = pg_sequence_last_value(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (fcinfo->isnull)
		return 0;
	return DatumGetInt64(result);
}

/*
 * The safe horizon: the highest position p such that no event at a
 * position <= p can still become visible.  Take the snapshot to read
 * with after calling this.
 */
int64
EsSafeHorizon(const EsCatalog *cat)
{
	int64		horizon;

	if (es_registry == NULL)
		EsRequirePreloaded();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the global feed cannot be read on a standby"),
				 errdetail("A standby cannot see which appends are in flight on the primary, so it cannot compute a safe horizon."),
				 errhint("Read the global feed on the primary; read_stream works on a standby.")));

	horizon = es_last_allocated(cat);
	pg_memory_barrier();

	for (int i = 0; i < es_registry->nslots; i++)
	{
		EsInflightSlot *slot = &es_registry->slots[i];
		uint32		state = pg_atomic_read_u32(&slot->state);

		if (state == ES_SLOT_FREE)
			continue;
		pg_read_barrier();
		if (slot->dbid != MyDatabaseId)
			continue;

		if (state == ES_SLOT_RESERVING)
		{
			/*
			 * The owner is inside nextval: wait until it publishes.  Sleep
			 * rather than spin: nextval can wait on a lock for as long as
			 * someone holds one on the sequence.
			 */
			long		sleep_us = 10;

			while ((state = pg_atomic_read_u32(&slot->state)) == ES_SLOT_RESERVING)
			{
				CHECK_FOR_INTERRUPTS();
				pg_usleep(sleep_us);
				sleep_us = Min(sleep_us * 2, 1000);
			}
			pg_read_barrier();
			if (state != ES_SLOT_HELD || slot->dbid != MyDatabaseId)
				continue;
		}

		{
			int64		held = (int64) pg_atomic_read_u64(&slot->min_position);

			if (held - 1 < horizon)
				horizon = held - 1;
		}
	}
	return horizon;
}
