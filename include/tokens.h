/*
 * tokens.h - the token estimate of a message that has no stored `tokens`
 * (pure code: get_context's budget, convd-protocol(7) "Token estimate").
 *
 * The estimate is meant to be sane for both English and Chinese text, not
 * exact for any one tokenizer (providers differ by 30% and more on the
 * same text; a bot that knows the real count stores it in `tokens`):
 *
 *   text tokens = W + ceil(B / 4)
 *     W: characters of the CJK scripts (Han ideographs with every
 *        extension, bopomofo, kana, Hangul, CJK punctuation and symbols,
 *        fullwidth forms): one token each;
 *     B: bytes of everything else (Latin and other scripts, digits,
 *        spaces, punctuation, emoji): one token per 4 bytes;
 *   message tokens = 4 + text tokens + ceil(S / 8)
 *     4: the per-message overhead of the chat formats (role, separators);
 *     S: for structured content, the bytes of its msgpack encoding beyond
 *        the bytes of its text (keys, ids, tool inputs, binary blobs):
 *        one token per 8 bytes.  0 for string content.
 *
 * "Hello, how are you today?" (25 bytes) is 4 + 7 = 11; "今天天氣很好。"
 * is 4 + 7 = 11.  Invalid UTF-8 counts as other bytes.
 */
#ifndef CONVD_TOKENS_H
#define CONVD_TOKENS_H

#include "common.h"

#define TOKENS_MESSAGE_OVERHEAD 4
#define TOKENS_BYTES_PER_TOKEN 4
#define TOKENS_STRUCT_BYTES_PER_TOKEN 8

/* Whether code point c is counted as one token (the CJK scripts above). */
bool tokens_is_cjk(uint32_t c);

/* The text tokens of text[0..len). */
uint64_t tokens_text(const char *text, size_t len);

/*
 * A message's estimate: its text (the `content` column: the string, or
 * the text of structured content) and the size of its structured
 * content's msgpack encoding (0 for string content).
 */
uint64_t tokens_estimate(const char *text, size_t text_len, size_t mp_len);

#endif
