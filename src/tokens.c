/*
 * tokens.c - the token estimate of a message without a stored count
 * (tokens.h has the formula).
 */
#include "tokens.h"
#include "utf8.h"

/* The CJK blocks, each [lo, hi], in code point order. */
static const struct {
	uint32_t lo, hi;
} cjk_ranges[] = {
	{0x1100, 0x11ff},	/* Hangul Jamo */
	{0x2e80, 0x2fdf},	/* CJK radicals, Kangxi radicals */
	{0x2ff0, 0x303f},	/* ideographic description, CJK punctuation */
	{0x3040, 0x30ff},	/* Hiragana, Katakana */
	{0x3100, 0x33ff},	/* Bopomofo, Hangul compatibility jamo,
				   Kanbun, strokes, enclosed, compatibility */
	{0x3400, 0x4dbf},	/* CJK extension A */
	{0x4e00, 0x9fff},	/* CJK unified ideographs */
	{0xa960, 0xa97f},	/* Hangul Jamo extended A */
	{0xac00, 0xd7ff},	/* Hangul syllables, Jamo extended B */
	{0xf900, 0xfaff},	/* CJK compatibility ideographs */
	{0xfe30, 0xfe4f},	/* CJK compatibility forms */
	{0xff00, 0xffef},	/* halfwidth and fullwidth forms */
	{0x20000, 0x3ffff},	/* CJK extensions B to H (planes 2 and 3) */
};

bool tokens_is_cjk(uint32_t c)
{
	for (size_t i = 0; i < ARRAY_LEN(cjk_ranges); i++) {
		if (c < cjk_ranges[i].lo)
			return false;
		if (c <= cjk_ranges[i].hi)
			return true;
	}
	return false;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

uint64_t tokens_text(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	uint64_t words = 0, other = 0;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n;

		if (s[i] < 0x80) {	/* the common case, byte by byte */
			other++;
			i++;
			continue;
		}
		n = utf8_next(s + i, len - i, &cp);
		if (cp == UTF8_INVALID) {
			other++;
			i++;
		} else {
			if (tokens_is_cjk(cp))
				words++;
			else
				other += n;
			i += n;
		}
	}
	return words + div_up(other, TOKENS_BYTES_PER_TOKEN);
}

uint64_t tokens_estimate(const char *text, size_t text_len, size_t mp_len)
{
	uint64_t t = TOKENS_MESSAGE_OVERHEAD + tokens_text(text, text_len);

	if (mp_len > text_len)
		t += div_up(mp_len - text_len, TOKENS_STRUCT_BYTES_PER_TOKEN);
	return t;
}
