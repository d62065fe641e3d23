/*-------------------------------------------------------------------------
 *
 * jsonwrite.h
 *	  JSON text writers of the output plugin (jsonwrite.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_JSONWRITE_H
#define EVENTSTORE_JSONWRITE_H

#include "access/xlogdefs.h"
#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/*
 * Append n bytes to out.  Inline, for the many short pieces of a line;
 * out->data is NUL-terminated again by the functions below, not by these.
 */
static inline void
EsPut(StringInfo out, const char *s, int n)
{
	if (out->len + n >= out->maxlen)
		enlargeStringInfo(out, n);
	memcpy(out->data + out->len, s, n);
	out->len += n;
}

static inline void
EsPutChar(StringInfo out, char c)
{
	if (out->len + 1 >= out->maxlen)
		enlargeStringInfo(out, 1);
	out->data[out->len++] = c;
}

/* Append a string literal. */
#define EsPutLiteral(out, lit) EsPut((out), "" lit, sizeof(lit) - 1)

extern void EsJsonString(StringInfo out, const char *s, int len);
extern void EsJsonJsonb(StringInfo out, const Jsonb *jb);
extern void EsAppendInt64(StringInfo out, int64 value);
extern void EsJsonUuid(StringInfo out, const pg_uuid_t *uuid);
extern void EsJsonLsn(StringInfo out, XLogRecPtr lsn);
extern void EsJsonTimestamptz(StringInfo out, TimestampTz ts);
extern bool EsJsonbMeasure(const Jsonb *jb, int max_depth, Size max_bound,
						   Size *bound);

#endif							/* EVENTSTORE_JSONWRITE_H */
