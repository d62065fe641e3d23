/*-------------------------------------------------------------------------
 *
 * feed.h
 *	  The gap-safe global feed (feed.c) as an iterator for C callers: the
 *	  projection batch (projection_batch.c) reads through it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_FEED_H
#define ES_FEED_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/array.h"

typedef struct EsFeedRead EsFeedRead;

extern EsFeedRead *EsFeedOpen(int64 after, text *prefix, ArrayType *types, bool whole_table);
extern TupleTableSlot *EsFeedNext(EsFeedRead *rd);
extern int64 EsFeedHorizon(EsFeedRead *rd);
extern void EsFeedClose(EsFeedRead *rd);

#endif							/* ES_FEED_H */
