/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  Streams: name rules, category, the per-stream append lock and
 *	  direct index lookups (stream.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_STREAM_H
#define EVENTSTORE_STREAM_H

#include "utils/snapshot.h"

#include "catalog.h"

extern void EsCheckStreamName(text *stream);
extern text *EsCategoryOf(text *stream);
extern void EsLockStream(text *stream);
extern int64 EsCurrentVersion(const EsCatalog *cat, text *stream,
							  Snapshot snapshot);
extern bool EsFindEventById(const EsCatalog *cat, Datum event_id,
							Snapshot snapshot, text **stream, int64 *version,
							int64 *position);

#endif							/* EVENTSTORE_STREAM_H */
