/*-------------------------------------------------------------------------
 *
 * projection_batch.h
 *	  One batch of a projection in C (projection_batch.c), shared by
 *	  run_projection, the worker and inline projections' history.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_PROJECTION_BATCH_H
#define ES_PROJECTION_BATCH_H

#include "postgres.h"

extern int64 EsProjectionWorkerBatch(const char *name, int max_count, int naptime_ms);

#endif							/* ES_PROJECTION_BATCH_H */
