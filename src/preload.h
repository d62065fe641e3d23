/*-------------------------------------------------------------------------
 *
 * preload.h
 *	  Whether the library was loaded through shared_preload_libraries
 *	  (preload.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_PRELOAD_H
#define EVENTSTORE_PRELOAD_H

/* true when the library was loaded through shared_preload_libraries */
extern bool es_preloaded;

extern void EsPreloadInit(void);
extern void EsRequirePreloaded(void);

#endif							/* EVENTSTORE_PRELOAD_H */
