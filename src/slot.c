/*-------------------------------------------------------------------------
 *
 * slot.c
 *	  Replication slots that follow the transaction: a subscription's slot
 *	  is created and dropped together with its row.
 *
 * PostgreSQL's slot functions are not transactional: a statement that
 * creates a slot and then fails keeps the slot, one that drops a slot and
 * then fails loses it.  Here:
 *
 * - _create_slot creates a TEMPORARY logical slot owned by this backend
 *	 and remembers its name.  Just before the top-level transaction commits
 *	 (XACT_EVENT_PRE_COMMIT) it is made persistent (written to disk), so it
 *	 exists after the commit.  If the transaction or the subtransaction that
 *	 created it aborts, it is dropped at once.
 * - _drop_slot_at_commit remembers a name; the slot is dropped just before
 *	 the top-level transaction commits.  An error there aborts the
 *	 transaction, so the row deletion rolls back with it.  A drop queued in
 *	 a subtransaction that aborts is forgotten.
 * - Dropping the table eventstore.subscription (DROP EXTENSION) queues the
 *	 drop of every subscription's slot the same way (an object_access_hook
 *	 reads the slot names just before the table goes), as DROP SUBSCRIPTION
 *	 drops its slot: no slot is left holding WAL with nothing that names it.
 *
 * What PostgreSQL 15 itself does with a backend's temporary slots (its
 * sources, and the call sequence in the 15.20 binary): PostgresMain's error
 * recovery (tcop/postgres.c) calls AbortCurrentTransaction, then releases
 * MyReplicationSlot and calls ReplicationSlotCleanup(), which drops every
 * temporary slot this backend owns; WalSndErrorCleanup does the same in a
 * walsender, and ReplicationSlotShmemExit (a before_shmem_exit callback,
 * slot.c) at backend exit, FATAL included.  At startup RestoreSlotFromDisk
 * removes any slot whose state file is not RS_PERSISTENT, so after a crash
 * a temporary slot is gone (test/t/034).  But nothing drops a temporary
 * slot when only a subtransaction aborts (a PL/pgSQL EXCEPTION block), when
 * a transaction is rolled back without an error (ROLLBACK inside a DO
 * block or procedure), or when a background worker catches an error and
 * aborts on its own (as worker.c does).  So the ABORT and ABORT_SUB
 * callbacks here drop this module's slots themselves.  On an ERROR at top
 * level that also comes first: AbortTransaction runs the XACT_EVENT_ABORT
 * callbacks before it releases the transaction's locks, so a
 * create_subscription waiting on the name's advisory lock never finds the
 * failed creator's temporary slot.
 *
 * Dropping in an abort callback must not raise an error.  By then
 * AbortTransaction/AbortSubTransaction have released all LWLocks.  A
 * temporary slot owned by this backend (active_pid is ours) cannot be
 * acquired by anyone else, so ReplicationSlotDrop cannot fail on it, and
 * ReplicationSlotDropPtr only warns when it cannot rename a non-persistent
 * slot's directory ("this might get called during error handling").  We
 * check ownership under ReplicationSlotControlLock first and leave anything
 * that is not ours alone.
 *
 * Before anything is done at pre-commit, every slot to drop is checked not
 * to be in use by another process, so that one drop failing after others
 * were done (which the abort could not undo) takes a process attaching in
 * that instant.
 *
 * Limits that remain: a crash between XACT_EVENT_PRE_COMMIT and the commit
 * record leaves a persistent slot without its row (the next
 * create_subscription of that name drops it, as before); so does an error
 * after the PRE_COMMIT callbacks (a serialization failure at commit, or a
 * pre-commit callback registered before ours, which runs after it): the
 * abort leaves such a slot with a WARNING rather than risk an error while
 * aborting, and cannot undo a drop already done.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "slot.h"

/* The output plugin of the slots this module creates: this library. */
#define ES_SLOT_PLUGIN "eventstore"

typedef enum EsSlotAction
{
	ES_SLOT_CREATE,				/* a temporary slot to persist at commit */
	ES_SLOT_DROP				/* a slot to drop at commit */
} EsSlotAction;

typedef enum EsSlotState
{
	ES_SLOT_CREATING,			/* ReplicationSlotCreate may not have run yet */
	ES_SLOT_TEMPORARY,			/* created, temporary, owned by this backend */
	ES_SLOT_PERSISTED			/* made persistent at pre-commit (or trying) */
} EsSlotState;

/* One slot this transaction creates or drops. */
typedef struct EsPendingSlot
{
	EsSlotAction action;
	EsSlotState state;			/* ES_SLOT_CREATE only */
	SubTransactionId subid;		/* (sub)transaction that queued it */
	NameData	name;
} EsPendingSlot;

/*
 * The pending slots of the current top-level transaction, in the order they
 * were queued; the list and its cells live in TopTransactionContext.
 */
static List *es_pending_slots = NIL;

static bool es_slot_callbacks_registered = false;

static void es_slot_xact_callback(XactEvent event, void *arg);
static void es_slot_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);

/* Register the transaction callbacks the first time they are needed. */
static void
es_slot_register_callbacks(void)
{
	if (es_slot_callbacks_registered)
		return;
	RegisterXactCallback(es_slot_xact_callback, NULL);
	RegisterSubXactCallback(es_slot_subxact_callback, NULL);
	es_slot_callbacks_registered = true;
}

/* Queue a slot action for the current (sub)transaction. */
static EsPendingSlot *
es_slot_queue(EsSlotAction action, const char *name)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	EsPendingSlot *p = palloc0(sizeof(EsPendingSlot));

	p->action = action;
	p->state = ES_SLOT_CREATING;
	p->subid = GetCurrentSubTransactionId();
	namestrcpy(&p->name, name);
	es_pending_slots = lappend(es_pending_slots, p);
	MemoryContextSwitchTo(old);
	return p;
}

/* The pending entry of this transaction for a slot name and action, or NULL. */
static EsPendingSlot *
es_slot_find(EsSlotAction action, const char *name)
{
	ListCell   *lc;

	foreach(lc, es_pending_slots)
	{
		EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);

		if (p->action == action && strcmp(NameStr(p->name), name) == 0)
			return p;
	}
	return NULL;
}

/* Error out if this backend holds a replication slot (it can hold one). */
static void
es_slot_require_none_acquired(void)
{
	if (MyReplicationSlot != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("replication slot \"%s\" is still acquired by this session",
						NameStr(MyReplicationSlot->data.name))));
}

/*
 * Copy the fields of the named replication slot, read under its locks;
 * false if there is no such slot.
 */
bool
EsSlotLookup(const char *name, EsSlotInfo *info)
{
	ReplicationSlot *s;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(name, false);
	if (s != NULL)
	{
		SpinLockAcquire(&s->mutex);
		info->database = s->data.database;
		info->temporary = s->data.persistency == RS_TEMPORARY;
		info->active_pid = s->active_pid;
		info->restart_lsn = s->data.restart_lsn;
		info->confirmed_flush = s->data.confirmed_flush;
		SpinLockRelease(&s->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	return s != NULL;
}

/*
 * Drop, during an abort, the slot a CREATE entry made, if it is still this
 * module's: temporary and owned by this backend, or persistent and unowned
 * after the pre-commit callback made it so.  Never raises an error for a
 * temporary slot (see the file header).
 */
static void
es_slot_drop_created(EsPendingSlot *p)
{
	EsSlotInfo	info;
	bool		exists;

	if (MyReplicationSlot != NULL)
	{
		/*
		 * The slot being created, or being persisted, when the error came:
		 * release it first.  If another slot is still acquired (a slot
		 * function that failed in a subtransaction leaves its slot so) we
		 * cannot acquire ours: it stays temporary, never persisted, until
		 * PostgresMain's error recovery or the backend's exit drops it.
		 */
		if (strcmp(NameStr(MyReplicationSlot->data.name), NameStr(p->name)) != 0)
			return;
		ReplicationSlotRelease();
	}
	else if (p->state == ES_SLOT_CREATING)
		return;					/* ReplicationSlotCreate failed: nothing made */

	exists = EsSlotLookup(NameStr(p->name), &info);
	if (exists && info.temporary && info.active_pid == MyProcPid)
		ReplicationSlotDrop(NameStr(p->name), true);
	else if (exists && p->state == ES_SLOT_PERSISTED)

		/*
		 * Made persistent at pre-commit, then the commit failed.  Dropping
		 * a persistent slot can fail (another process may attach to it
		 * now, its directory may not be renamed), and an error here would
		 * abort the abort: leave it, and say so.
		 */
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("replication slot \"%s\" of a subscription that was not created is left behind",
						NameStr(p->name)),
				 errhint("The next create_subscription of that name drops it; pg_drop_replication_slot() drops it now.")));
}

/*
 * Fail now, before anything is done, if a slot to be dropped is in use by
 * another process: dropping it would fail after earlier drops of the same
 * transaction were done, which its abort could not undo.
 */
static void
es_slot_check_droppable(const char *name)
{
	EsSlotInfo	info;

	if (EsSlotLookup(name, &info) && info.active_pid != 0 && info.active_pid != MyProcPid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("replication slot \"%s\" is active for PID %d", name, info.active_pid)));
}

/*
 * Pre-commit: make the created slots persistent and drop the queued ones,
 * in the order they were queued (a slot created and then dropped in one
 * transaction is persisted, then dropped).  An error here aborts the
 * transaction, whose abort callback then drops the created slots.
 */
static void
es_slot_pre_commit(void)
{
	ListCell   *lc;

	if (es_pending_slots == NIL)
		return;
	es_slot_require_none_acquired();

	foreach(lc, es_pending_slots)
	{
		EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);

		if (p->action == ES_SLOT_DROP)
			es_slot_check_droppable(NameStr(p->name));
	}

	foreach(lc, es_pending_slots)
	{
		EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);
		const char *name = NameStr(p->name);

		if (p->action == ES_SLOT_CREATE)
		{
			/* (a failed creation always aborts its (sub)transaction) */
			Assert(p->state == ES_SLOT_TEMPORARY);
			if (p->state != ES_SLOT_TEMPORARY)
				continue;
			p->state = ES_SLOT_PERSISTED;
			ReplicationSlotAcquire(name, true);
			if (MyReplicationSlot->data.persistency != RS_TEMPORARY)
			{
				ReplicationSlotRelease();
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("replication slot \"%s\" is no longer the temporary slot this transaction created",
								name)));
			}
			/* persistency RS_PERSISTENT, mark dirty, write it to disk */
			ReplicationSlotPersist();
			ReplicationSlotRelease();
		}
		else if (SearchNamedReplicationSlot(name, true) != NULL)
		{
			/* a slot lost meanwhile needs no drop, as before */
			ReplicationSlotDrop(name, true);
		}
	}
}

/* Top-level transaction events. */
static void
es_slot_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			es_slot_pre_commit();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (es_pending_slots != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that creates or drops a subscription's replication slot"),
						 errdetail("A replication slot is created or dropped when its transaction commits; a prepared transaction has no session to do it."),
						 errhint("Create or drop the subscription in an ordinary transaction.")));
			break;
		case XACT_EVENT_ABORT:
			{
				/* detached first: nothing here runs twice */
				List	   *pending = es_pending_slots;

				es_pending_slots = NIL;
				foreach(lc, pending)
				{
					EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);

					if (p->action == ES_SLOT_CREATE)
						es_slot_drop_created(p);
				}
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			es_pending_slots = NIL;
			break;
		default:
			break;
	}
}

/*
 * Subtransaction events: a committed subtransaction hands its entries to
 * its parent; an aborted one drops the slots it created and forgets the
 * drops it queued.
 */
static void
es_slot_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid,
						 void *arg pg_attribute_unused())
{
	ListCell   *lc;

	if (es_pending_slots == NIL)
		return;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			foreach(lc, es_pending_slots)
			{
				EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);

				if (p->subid == mySubid)
					p->subid = parentSubid;
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			foreach(lc, es_pending_slots)
			{
				EsPendingSlot *p = (EsPendingSlot *) lfirst(lc);

				if (p->subid != mySubid)
					continue;
				if (p->action == ES_SLOT_CREATE)
					es_slot_drop_created(p);
				es_pending_slots = foreach_delete_current(es_pending_slots, lc);
			}
			break;
		default:
			break;
	}
}

/*
 * Does a committed subscription own the slot of this name?  Read with
 * SnapshotSelf (every committed row, no predicate locks): a REPEATABLE READ
 * or SERIALIZABLE creator that waited for the name's lock while another
 * created it has a snapshot that does not see the winner's row, and must
 * not take its slot for a leftover.
 */
static bool
es_slot_has_subscription(const char *name)
{
	const EsCatalog *cat = EsGetCatalog();
	Relation	heap = table_open(cat->subscription, AccessShareLock);
	Relation	index = index_open(cat->subscription_slot_idx, AccessShareLock);
	TupleTableSlot *tslot = table_slot_create(heap, NULL);
	NameData	key_name;
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found;

	namestrcpy(&key_name, name);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&key_name));
	scan = index_beginscan(heap, index, SnapshotSelf, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, tslot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(tslot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return found;
}

PG_FUNCTION_INFO_V1(eventstore_create_slot);

/*
 * SQL: _create_slot(slot_name, subscription) -- create a logical slot of
 * the eventstore plugin that commits with the transaction: temporary now,
 * persistent at commit, gone on abort.  A slot of that name that is not
 * this transaction's and that no committed subscription owns (left behind
 * by a crash between a slot's creation and its subscription's commit) is
 * dropped first; one a subscription owns is an error (subscription is its
 * name, for the message).  Like any logical slot creation
 * it waits for the transactions with writes that are running.
 */
Datum
eventstore_create_slot(PG_FUNCTION_ARGS)
{
	const char *name = NameStr(*PG_GETARG_NAME(0));
	const char *subscription = text_to_cstring(PG_GETARG_TEXT_PP(1));
	EsPendingSlot *p;
	LogicalDecodingContext *ctx;
	ResourceOwner old_resowner = CurrentResourceOwner;

	CheckSlotPermissions();
	CheckLogicalDecodingRequirements();
	ReplicationSlotValidateName(name, ERROR);
	es_slot_require_none_acquired();

	/*
	 * Finding the start point waits for every transaction with an xid to
	 * end, this one too; CreateInitDecodingContext refuses it with a less
	 * helpful message.  Checked first, so a refused call changes nothing.
	 */
	if (GetTopTransactionIdIfAny() != InvalidTransactionId)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot create replication slot \"%s\" in a transaction that has written", name),
				 errdetail("A new logical replication slot waits for every transaction with writes to end, this one included."),
				 errhint("Create one subscription per statement, before any write of its transaction.")));
	if (es_slot_find(ES_SLOT_CREATE, name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" is already created by this transaction", name)));
	if (es_slot_find(ES_SLOT_DROP, name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("replication slot \"%s\" is dropped when this transaction commits", name),
				 errhint("Create it again in a later transaction.")));

	es_slot_register_callbacks();

	/* a slot left behind by a crash: it belongs to no subscription */
	if (SearchNamedReplicationSlot(name, true) != NULL)
	{
		if (es_slot_has_subscription(name))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("subscription \"%s\" already exists", subscription),
					 errdetail("It was created while this transaction waited for its name; replication slot \"%s\" is its slot.",
							   name),
					 errhint("This transaction's snapshot predates it (REPEATABLE READ or SERIALIZABLE).")));
		ReplicationSlotDrop(name, true);
	}

	/* queued first, so an error from here on drops what was made */
	p = es_slot_queue(ES_SLOT_CREATE, name);

	/* as slotfuncs.c's create_logical_replication_slot, but temporary */
	ReplicationSlotCreate(name, true, RS_TEMPORARY, false);
	p->state = ES_SLOT_TEMPORARY;
	ctx = CreateInitDecodingContext(ES_SLOT_PLUGIN, NIL,
									false,	/* catalogs only */
									InvalidXLogRecPtr,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									NULL, NULL, NULL);
	DecodingContextFindStartpoint(ctx);

	/*
	 * Finding the start point decodes the commits of catalog changes in
	 * internal subtransactions, whose end leaves the top transaction's
	 * resource owner current: restore the caller's (as
	 * pg_logical_slot_get_changes does), or the calling statement releases
	 * its snapshot under the wrong one.
	 */
	CurrentResourceOwner = old_resowner;
	FreeDecodingContext(ctx);
	ReplicationSlotRelease();	/* a temporary slot stays owned by us */

	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(eventstore_drop_slot_at_commit);

/*
 * SQL: _drop_slot_at_commit(slot_name) -- drop the slot when the top-level
 * transaction commits (nothing if it no longer exists then); forgotten if
 * this (sub)transaction aborts.  A slot still in use by another session
 * makes the commit fail.
 */
Datum
eventstore_drop_slot_at_commit(PG_FUNCTION_ARGS)
{
	const char *name = NameStr(*PG_GETARG_NAME(0));

	CheckSlotPermissions();
	CheckSlotRequirements();
	ReplicationSlotValidateName(name, ERROR);
	es_slot_register_callbacks();
	(void) es_slot_queue(ES_SLOT_DROP, name);
	PG_RETURN_VOID();
}

static object_access_hook_type es_prev_object_access_hook = NULL;

/*
 * Is relid the table eventstore.subscription?  By name, not through the
 * catalog cache: during DROP EXTENSION the other objects it caches may be
 * gone already.
 */
static bool
es_slot_is_subscription_table(Oid relid)
{
	char	   *relname;
	char	   *nspname;

	if (get_rel_relkind(relid) != RELKIND_RELATION)
		return false;
	relname = get_rel_name(relid);
	if (relname == NULL || strcmp(relname, "subscription") != 0)
		return false;
	nspname = get_namespace_name(get_rel_namespace(relid));
	return nspname != NULL && strcmp(nspname, "eventstore") == 0;
}

/*
 * Queue, for this transaction's commit, the drop of the slot of every
 * subscription in the table relid, which is about to be dropped.  Rows are
 * read with a fresh snapshot: the drop holds the table's AccessExclusiveLock,
 * so every subscription committed before it, and those of this transaction,
 * are seen.  A rollback of the drop forgets the queued drops (see the
 * subtransaction and transaction callbacks), so the slots stay with their
 * subscriptions.
 */
static void
es_slot_queue_drops_of(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	attnum = get_attnum(relid, "slot_name");
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *tslot;

	if (attnum == InvalidAttrNumber ||
		TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != NAMEOID)
	{
		table_close(rel, AccessShareLock);
		return;
	}
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	tslot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, tslot))
	{
		bool		isnull;
		Datum		name = slot_getattr(tslot, attnum, &isnull);

		if (isnull || es_slot_find(ES_SLOT_DROP, NameStr(*DatumGetName(name))) != NULL)
			continue;
		es_slot_register_callbacks();
		(void) es_slot_queue(ES_SLOT_DROP, NameStr(*DatumGetName(name)));
	}
	ExecDropSingleTupleTableSlot(tslot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
}

/*
 * object_access_hook: just before the table eventstore.subscription is
 * dropped, queue its subscriptions' slots to be dropped at commit.
 */
static void
es_slot_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					  int subId, void *arg)
{
	if (es_prev_object_access_hook)
		es_prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		es_slot_is_subscription_table(objectId))
		es_slot_queue_drops_of(objectId);
}

/* Install the object_access_hook (from _PG_init). */
void
EsSlotInit(void)
{
	es_prev_object_access_hook = object_access_hook;
	object_access_hook = es_slot_object_access;
}
