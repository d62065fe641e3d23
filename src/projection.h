/*-------------------------------------------------------------------------
 *
 * projection.h
 *	  Calling projection handlers as their projection's owner (projection.c),
 *	  for the projection batch (projection_batch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_PROJECTION_H
#define ES_PROJECTION_H

#include "postgres.h"

#include "fmgr.h"

/* A handler prepared for calls (EsHandlerInit). */
typedef struct EsHandler
{
	Oid			handler;
	Oid			owner;			/* the projection's owner: the role it runs as */
	bool		batch;			/* handler(events eventstore.event[]) */
	char	   *search_path;	/* the projection's, pg_temp last */
	MemoryContext cxt;			/* of flinfo */
	bool		stale;			/* a call failed: look the function up again */
	FmgrInfo	flinfo;
} EsHandler;

extern void EsRequireExtensionOwner(const char *function);
extern bool EsHandlerIsBatch(Oid handler);
extern void EsHandlerInit(EsHandler *h, Oid handler, Oid owner, const char *search_path,
						  MemoryContext cxt);
extern int	EsHandlerBegin(EsHandler *h);
extern void EsHandlerCall(EsHandler *h, Datum arg);
extern void EsHandlerEnd(int nestlevel);
extern void EsHandlerFailed(EsHandler *h);

#endif							/* ES_PROJECTION_H */
