/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  Background workers that run async projections (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_WORKER_H
#define EVENTSTORE_WORKER_H

extern void EsWorkerInit(void);
extern Size EsWorkerShmemSize(void);
extern void EsWorkerShmemInit(void);

#endif							/* EVENTSTORE_WORKER_H */
