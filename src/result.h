/*-------------------------------------------------------------------------
 *
 * result.h
 *	  Result sets of eventstore.event rows, in kept buffers (result.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_RESULT_H
#define EVENTSTORE_RESULT_H

#include "fmgr.h"

struct ReturnSetInfo;
struct TupleTableSlot;

extern void EsResultInit(void);
extern void EsInitEventResult(FunctionCallInfo fcinfo);
extern void EsPutEvent(struct ReturnSetInfo *rsinfo, struct TupleTableSlot *slot);

#endif							/* EVENTSTORE_RESULT_H */
