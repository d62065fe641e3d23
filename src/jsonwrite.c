/*-------------------------------------------------------------------------
 *
 * jsonwrite.c
 *	  Writing JSON text for the output plugin, fast: strings, jsonb
 *	  values, integers, UUIDs and LSNs appended straight to a StringInfo.
 *
 * The output is byte for byte what PostgreSQL writes: strings are escaped
 * as escape_json() does, and a jsonb value reads as jsonb's own text
 * output (jsonb::text), with ", " and ": " between items.  The jsonb
 * writer walks the on-disk container format (utils/jsonb.h) directly
 * instead of through JsonbIterator, which allocates and copies every key
 * and string; numbers still go through numeric_out.  Pieces are appended
 * with the inline EsPut (jsonwrite.h), and a timestamp's text is built
 * once per second of time and time zone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "jsonwrite.h"

static const char es_hex[] = "0123456789abcdef";

/*
 * For each byte, the character after the backslash that escapes it in a
 * JSON string; 'u' for \u00XX; 0 for bytes written as they are.  The
 * escapes are those of escape_json().
 */
static const char es_escape[256] = {
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
	0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

/*
 * Append len bytes of s as a JSON string, escaped as escape_json() does.
 * Most strings need no escape: they are found by one scan and copied at
 * once; otherwise runs of plain bytes are copied between the escapes.
 */
void
EsJsonString(StringInfo out, const char *s, int len)
{
	const char *end = s + len;
	const char *p = s;
	const char *run = s;
	char	   *w;

	while (p < end && es_escape[(unsigned char) *p] == 0)
		p++;
	if (p == end)
	{
		if (out->len + len + 2 >= out->maxlen)
			enlargeStringInfo(out, len + 2);
		w = out->data + out->len;
		*w++ = '"';
		memcpy(w, s, len);
		w[len] = '"';
		out->len += len + 2;
		out->data[out->len] = '\0';
		return;
	}

	EsPutChar(out, '"');
	for (; p < end; p++)
	{
		unsigned char c = (unsigned char) *p;
		char		esc = es_escape[c];

		if (likely(esc == 0))
			continue;
		if (p > run)
			EsPut(out, run, p - run);
		run = p + 1;
		if (esc == 'u')
		{
			char		u[6] = {'\\', 'u', '0', '0', es_hex[c >> 4], es_hex[c & 0xF]};

			EsPut(out, u, sizeof(u));
		}
		else
		{
			char		e[2] = {'\\', esc};

			EsPut(out, e, sizeof(e));
		}
	}
	if (end > run)
		EsPut(out, run, end - run);
	EsPutChar(out, '"');
	out->data[out->len] = '\0';
}

/* Where the data of the entry after one that starts at start begins. */
static inline uint32
es_jentry_end(JEntry entry, uint32 start)
{
	return JBE_HAS_OFF(entry) ? JBE_OFFLENFLD(entry) : start + JBE_OFFLENFLD(entry);
}

static void es_json_container(StringInfo out, const JsonbContainer *jc);

/* Append the value of entry, whose data is base[start .. end). */
static void
es_json_entry(StringInfo out, JEntry entry, const char *base,
			  uint32 start, uint32 end)
{
	switch (entry & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			EsJsonString(out, base + start, end - start);
			break;
		case JENTRY_ISNUMERIC:
			{
				char	   *num = DatumGetCString(DirectFunctionCall1(numeric_out,
																	  PointerGetDatum(base + INTALIGN(start))));

				EsPut(out, num, strlen(num));
				pfree(num);
			}
			break;
		case JENTRY_ISBOOL_FALSE:
			EsPutLiteral(out, "false");
			break;
		case JENTRY_ISBOOL_TRUE:
			EsPutLiteral(out, "true");
			break;
		case JENTRY_ISNULL:
			EsPutLiteral(out, "null");
			break;
		case JENTRY_ISCONTAINER:
			es_json_container(out, (const JsonbContainer *) (base + INTALIGN(start)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("unknown jsonb entry type %u", entry & JENTRY_TYPEMASK)));
	}
}

/*
 * Append a jsonb container.  An object's entries are its keys, then its
 * values in the same order; the data of all entries follows them, each
 * entry's end being its stored offset or the previous end plus its
 * stored length.
 */
static void
es_json_container(StringInfo out, const JsonbContainer *jc)
{
	uint32		count = jc->header & JB_CMASK;

	check_stack_depth();
	if (jc->header & JB_FOBJECT)
	{
		const char *base = (const char *) &jc->children[count * 2];
		uint32		kstart = 0;
		uint32		vstart = 0;

		/* the values' data starts where the last key's ends */
		for (uint32 i = 0; i < count; i++)
			vstart = es_jentry_end(jc->children[i], vstart);

		EsPutChar(out, '{');
		for (uint32 i = 0; i < count; i++)
		{
			JEntry		key = jc->children[i];
			JEntry		value = jc->children[count + i];
			uint32		kend = es_jentry_end(key, kstart);
			uint32		vend = es_jentry_end(value, vstart);

			if (i > 0)
				EsPutLiteral(out, ", ");
			EsJsonString(out, base + kstart, kend - kstart);
			EsPutLiteral(out, ": ");
			es_json_entry(out, value, base, vstart, vend);
			kstart = kend;
			vstart = vend;
		}
		EsPutChar(out, '}');
	}
	else
	{
		const char *base = (const char *) &jc->children[count];
		bool		scalar = (jc->header & JB_FSCALAR) != 0;
		uint32		start = 0;

		if (!scalar)
			EsPutChar(out, '[');
		for (uint32 i = 0; i < count; i++)
		{
			uint32		end = es_jentry_end(jc->children[i], start);

			if (i > 0)
				EsPutLiteral(out, ", ");
			es_json_entry(out, jc->children[i], base, start, end);
			start = end;
		}
		if (!scalar)
			EsPutChar(out, ']');
	}
}

/* Append a jsonb value as jsonb::text writes it. */
void
EsJsonJsonb(StringInfo out, const Jsonb *jb)
{
	es_json_container(out, &jb->root);
	out->data[out->len] = '\0';
}

/* Append a signed 64-bit integer in decimal. */
void
EsAppendInt64(StringInfo out, int64 value)
{
	if (out->len + MAXINT8LEN + 1 >= out->maxlen)
		enlargeStringInfo(out, MAXINT8LEN + 1);
	out->len += pg_lltoa(value, out->data + out->len);
}

/* Append a UUID as a JSON string, in uuid_out's form. */
void
EsJsonUuid(StringInfo out, const pg_uuid_t *uuid)
{
	char	   *p;

	if (out->len + 2 + 2 * UUID_LEN + 4 >= out->maxlen)
		enlargeStringInfo(out, 2 + 2 * UUID_LEN + 4);
	p = out->data + out->len;
	*p++ = '"';
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = es_hex[uuid->data[i] >> 4];
		*p++ = es_hex[uuid->data[i] & 0xF];
	}
	*p++ = '"';
	*p = '\0';
	out->len = p - out->data;
}

/* Append an LSN as a JSON string in the %X/%X form of pg_lsn. */
void
EsJsonLsn(StringInfo out, XLogRecPtr lsn)
{
	char	   *p;

	if (out->len + 2 + 2 * 8 + 1 >= out->maxlen)
		enlargeStringInfo(out, 2 + 2 * 8 + 1);
	p = out->data + out->len;
	*p++ = '"';
	for (int half = 1; half >= 0; half--)
	{
		uint32		v = (uint32) (lsn >> (32 * half));
		int			shift = 28;

		while (shift > 0 && ((v >> shift) & 0xF) == 0)
			shift -= 4;
		for (; shift >= 0; shift -= 4)
			*p++ = "0123456789ABCDEF"[(v >> shift) & 0xF];
		if (half == 1)
			*p++ = '/';
	}
	*p++ = '"';
	*p = '\0';
	out->len = p - out->data;
}

/*
 * The text of the last whole second written, in the time zone it was
 * written for: the part up to the seconds and the zone offset after them.
 */
static struct
{
	pg_tz	   *tz;
	int64		second;			/* ts / USECS_PER_SEC; -1: none */
	char		head[MAXDATELEN + 1];
	int			headlen;
	char		zone[MAXDATELEN + 1];
	int			zonelen;
}			es_ts_cache = {.tz = NULL, .second = -1};

/*
 * Append a timestamptz as a JSON string, as to_json(timestamptz) writes it
 * in the session's time zone (JsonEncodeDateTime).  A zone's offset only
 * changes at whole seconds, so the text of a second is made once and only
 * the fraction is written per value: ".ffffff" without trailing zeros, as
 * AppendSeconds() does.  Values before 2000 (and infinities) take the
 * general path.
 */
void
EsJsonTimestamptz(StringInfo out, TimestampTz ts)
{
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_NOT_FINITE(ts) || ts < 0)
	{
		EsPutChar(out, '"');
		JsonEncodeDateTime(buf, TimestampTzGetDatum(ts), TIMESTAMPTZOID, NULL);
		EsPut(out, buf, strlen(buf));
		EsPutChar(out, '"');
		out->data[out->len] = '\0';
		return;
	}

	if (ts / USECS_PER_SEC != es_ts_cache.second || session_timezone != es_ts_cache.tz)
	{
		const char *t;

		JsonEncodeDateTime(buf, TimestampTzGetDatum(ts - ts % USECS_PER_SEC),
						   TIMESTAMPTZOID, NULL);
		/* "<date>THH:MM:SS<zone>": split after the seconds */
		t = strchr(buf, 'T');
		if (t == NULL || strlen(t) < 9)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("unexpected timestamp text \"%s\"", buf)));
		es_ts_cache.headlen = (t + 9) - buf;
		memcpy(es_ts_cache.head, buf, es_ts_cache.headlen);
		es_ts_cache.zonelen = strlen(t + 9);
		memcpy(es_ts_cache.zone, t + 9, es_ts_cache.zonelen);
		es_ts_cache.second = ts / USECS_PER_SEC;
		es_ts_cache.tz = session_timezone;
	}

	{
		int			need = es_ts_cache.headlen + 7 + es_ts_cache.zonelen + 2;
		int32		frac = (int32) (ts % USECS_PER_SEC);
		char	   *p;

		if (out->len + need >= out->maxlen)
			enlargeStringInfo(out, need);
		p = out->data + out->len;
		*p++ = '"';
		memcpy(p, es_ts_cache.head, es_ts_cache.headlen);
		p += es_ts_cache.headlen;
		if (frac != 0)
		{
			int			n = 6;

			*p++ = '.';
			for (int i = 5; i >= 0; i--)
			{
				p[i] = '0' + frac % 10;
				frac /= 10;
			}
			while (p[n - 1] == '0')
				n--;
			p += n;
		}
		memcpy(p, es_ts_cache.zone, es_ts_cache.zonelen);
		p += es_ts_cache.zonelen;
		*p++ = '"';
		*p = '\0';
		out->len = p - out->data;
	}
}

/*
 * An upper bound of the length of numeric_out's text of a number stored in
 * a jsonb value, read from its header alone.  The header is part of
 * numeric's on-disk format (utils/adt/numeric.c), which pg_upgrade keeps
 * readable and so cannot change: after the varlena header, one uint16 that
 * is either a short header (top bits 10: display scale in bits 7-12, weight
 * in bits 0-6 with bit 6 its sign) or the first word of a long one (top bit
 * 0: display scale in bits 0-13, followed by an int16 weight); top bits 11
 * mark NaN and the infinities, which jsonb never stores.  numeric_out
 * writes a sign, at most 4 digits per base-10000 digit before the point
 * (a single 0 when the weight is negative), the point and dscale digits.
 * This matters because the stored form can be tiny for a huge text:
 * 1e100000 takes 8 bytes and has 100,001 characters.
 */
static Size
es_numeric_text_bound(const char *num)
{
	const char *p = VARDATA_ANY(num);
	uint16		head;
	int			weight;
	int			dscale;

	memcpy(&head, p, sizeof(head));
	if ((head & 0xC000) == 0xC000)
		return sizeof("-Infinity") - 1;
	if (head & 0x8000)
	{
		dscale = (head & 0x1F80) >> 7;
		weight = (head & 0x0040) ? (int) (head & 0x003F) - 64 : (int) (head & 0x003F);
	}
	else
	{
		int16		w;

		memcpy(&w, p + sizeof(head), sizeof(w));
		dscale = head & 0x3FFF;
		weight = w;
	}
	return 2 + (Size) Max(weight + 1, 1) * 4 + dscale;
}

/* One open container of EsJsonbMeasure's walk. */
typedef struct EsMeasureFrame
{
	const JsonbContainer *jc;
	const char *base;			/* where its entries' data starts */
	uint32		nentries;		/* keys and values, or elements */
	uint32		next;			/* the next entry to look at */
	uint32		offset;			/* where that entry's data starts */
} EsMeasureFrame;

/* Enter container jc: fill frame, and count its brackets and separators. */
static void
es_measure_enter(EsMeasureFrame *f, const JsonbContainer *jc, Size *bound)
{
	uint32		count = jc->header & JB_CMASK;
	bool		object = (jc->header & JB_FOBJECT) != 0;

	f->jc = jc;
	f->nentries = object ? count * 2 : count;
	f->base = (const char *) &jc->children[f->nentries];
	f->next = 0;
	f->offset = 0;
	/* "[" "]" or "{" "}", ", " between items, ": " after each key */
	*bound += 2 + (Size) count * (object ? 4 : 2);
}

/*
 * Measure a jsonb value without recursion, so that no depth can overflow
 * the stack: return false as soon as containers nest deeper than
 * max_depth (a scalar has depth 0, [] and {} depth 1), else true with
 * *bound set to an upper bound of the length of its JSON text as
 * EsJsonJsonb and jsonb_out write it, strings fully escaped (six bytes per
 * byte).  Appends check both, so that every event stored can be written
 * by the output plugin and parsed back by poll (see es_check_payload in
 * append.c).  Stops early once *bound exceeds max_bound (returning true),
 * so a value whose text would be huge costs no more than one that fits.
 */
bool
EsJsonbMeasure(const Jsonb *jb, int max_depth, Size max_bound, Size *bound)
{
	int			root_depth = JB_ROOT_IS_SCALAR(jb) ? 0 : 1;
	EsMeasureFrame *stack;
	int			top = 0;		/* the innermost open container */

	*bound = 0;
	if (root_depth > max_depth)
		return false;
	stack = palloc(sizeof(EsMeasureFrame) * (max_depth + 1));
	es_measure_enter(&stack[0], &jb->root, bound);
	if (root_depth == 0)
		*bound -= 2;			/* a scalar is written without brackets */

	while (top >= 0 && *bound <= max_bound)
	{
		EsMeasureFrame *f = &stack[top];
		JEntry		entry;
		uint32		start;

		if (f->next >= f->nentries)
		{
			top--;
			continue;
		}
		entry = f->jc->children[f->next];
		start = f->offset;
		f->offset = es_jentry_end(entry, start);
		f->next++;

		switch (entry & JENTRY_TYPEMASK)
		{
			case JENTRY_ISSTRING:
				*bound += 2 + (Size) 6 * (f->offset - start);
				break;
			case JENTRY_ISNUMERIC:
				*bound += es_numeric_text_bound(f->base + INTALIGN(start));
				break;
			case JENTRY_ISCONTAINER:
				if (root_depth + top + 1 > max_depth)
				{
					pfree(stack);
					return false;
				}
				top++;
				es_measure_enter(&stack[top],
								 (const JsonbContainer *) (f->base + INTALIGN(start)),
								 bound);
				break;
			default:			/* true, false, null */
				*bound += 5;
				break;
		}
	}
	pfree(stack);
	return true;
}
