/*-------------------------------------------------------------------------
 *
 * registry.h
 *	  The in-flight registry behind the gap-safe global feed (registry.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_REGISTRY_H
#define EVENTSTORE_REGISTRY_H

#include "catalog.h"

#ifdef EVENTSTORE_BENCHMARK
/* eventstore.debug_skip_registry: benchmark builds only */
extern bool es_debug_skip_registry;
#else
/* the switch exists only in benchmark builds (make BENCHMARK=1) */
#define es_debug_skip_registry false
#endif

extern void EsRegistryInit(void);
extern Size EsRegistryShmemSize(void);
extern void EsRegistryShmemInit(void);
extern int64 EsAllocatePosition(const EsCatalog *cat);
extern int64 EsSafeHorizon(const EsCatalog *cat);
extern bool EsRegistryHoldsPositions(void);

#endif							/* EVENTSTORE_REGISTRY_H */
