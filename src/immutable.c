/*-------------------------------------------------------------------------
 *
 * immutable.c
 *	  The trigger that keeps stored events immutable: UPDATE, DELETE and
 *	  TRUNCATE of eventstore.events are refused for every role.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/rel.h"


PG_FUNCTION_INFO_V1(eventstore_refuse_change);

/* Statement-level BEFORE trigger: always raises. */
Datum
eventstore_refuse_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore_internal.refuse_change() must be called as a trigger")));

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		what = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		what = "DELETE";
	else
		what = "TRUNCATE";

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("events are immutable: %s on %s is not allowed",
					what, RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Stored events are never changed or removed."),
			 errhint("Append a compensating event instead.")));
	PG_RETURN_NULL();
}
