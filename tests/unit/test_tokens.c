/*
 * test_tokens.c - the token estimate (tokens.c): English, Traditional
 * Chinese, mixed text, other CJK scripts, invalid UTF-8, structured
 * content.
 */
#include <string.h>

#include "tap.h"
#include "tokens.h"

static uint64_t text(const char *s)
{
	return tokens_text(s, strlen(s));
}

static void test_english(void)
{
	/* 25 bytes: ceil(25 / 4) */
	is_int(text("Hello, how are you today?"), 7, "English sentence");
	is_int(text(""), 0, "empty text");
	is_int(text("a"), 1, "one letter");
	is_int(text("abcd"), 1, "four bytes: one token");
	is_int(text("abcde"), 2, "five bytes: two tokens");
	is_int(tokens_estimate("Hello, how are you today?", 25, 0), 11,
	       "English message: 4 + 7");
	/* a paragraph of 445 bytes: about 100 tokens by cl100k */
	{
		const char *p =
			"The quick brown fox jumps over the lazy dog. "
			"Please book a table for two at seven tomorrow "
			"evening, and send the confirmation to my email. "
			"If the restaurant is full, try the Italian place "
			"near the station instead; they usually have space "
			"on weekdays. Thanks a lot for your help with this, "
			"and remind me about the dentist appointment on "
			"Friday morning at nine thirty. Also check the "
			"weather forecast for the weekend please.";
		uint64_t t = text(p);

		ok(t >= 90 && t <= 130, "English paragraph of %zu bytes: %llu "
		   "tokens, within 90..130", strlen(p), (unsigned long long)t);
	}
}

static void test_chinese(void)
{
	/* Traditional Chinese: one token per character, punctuation too */
	is_int(text("今天天氣很好。"), 7, "Traditional Chinese sentence");
	is_int(tokens_estimate("今天天氣很好。", strlen("今天天氣很好。"), 0),
	       11, "Chinese message: 4 + 7");
	is_int(text("請問台北車站怎麼走？"), 10,
	       "question with a fullwidth question mark");
	is_int(text("「臺灣」、『高雄』"), 9, "CJK brackets and comma");
	/* bopomofo (Taiwan's phonetic script) */
	is_int(text("ㄅㄆㄇㄈ"), 4, "bopomofo");
	/* an extension B ideograph (4 bytes in UTF-8) counts one */
	is_int(text("\xf0\xa0\x80\x80"), 1, "CJK extension B: one token");
	/* Japanese kana and Korean Hangul */
	is_int(text("こんにちは"), 5, "hiragana");
	is_int(text("カタカナ"), 4, "katakana");
	is_int(text("안녕하세요"), 5, "Hangul syllables");
	/* a Chinese character is 3 bytes: the estimate is not bytes / 4 */
	ok(text("我想訂兩張明天早上去高雄的高鐵票") >
		   strlen("我想訂兩張明天早上去高雄的高鐵票") / 4,
	   "Chinese counts per character, not per 4 bytes");
}

static void test_mixed(void)
{
	/* 5 CJK characters + " LINE bot " (10 bytes: 3 tokens) */
	is_int(text("我想寫一個 LINE bot "), 5 + 3, "mixed: words and bytes");
	/* CJK and Latin in one sentence: each part by its own rule */
	is_int(text("用 Python 寫"), 2 + 2, "mixed: ' Python ' is 8 bytes");
	/* other scripts count their bytes: Cyrillic is 2 bytes a letter */
	is_int(text("привет"), 3, "Cyrillic: 12 bytes");
	/* an emoji is 4 bytes: one token */
	is_int(text("\xf0\x9f\x98\x80"), 1, "emoji");
	ok(!tokens_is_cjk('A') && tokens_is_cjk(0x4e00) &&
	   tokens_is_cjk(0x9fff) && !tokens_is_cjk(0xa000) &&
	   tokens_is_cjk(0xac00) && !tokens_is_cjk(0xe000) &&
	   tokens_is_cjk(0xff01) && !tokens_is_cjk(0x10ffff),
	   "tokens_is_cjk's block edges");
}

static void test_invalid(void)
{
	/* invalid UTF-8 counts as other bytes, one each */
	is_int(tokens_text("\xff\xfe\xfd\xfc", 4), 1, "invalid bytes");
	is_int(tokens_text("\xe4\xbd", 2), 1, "truncated sequence");
	is_int(tokens_text("\xed\xa0\x80", 3), 1, "surrogate: 3 bytes");
	is_int(tokens_text("\xc0\xaf", 2), 1, "overlong: 2 bytes");
	/* embedded NUL is counted like any byte */
	is_int(tokens_text("ab\0cd", 5), 2, "NUL byte counted");
}

static void test_structured(void)
{
	/* text of 12 bytes within 92 bytes of msgpack: 80 more bytes */
	is_int(tokens_estimate("Hello world!", 12, 92), 4 + 3 + 10,
	       "structured: a share of the bytes beyond the text");
	is_int(tokens_estimate("", 0, 17), 4 + 3,
	       "structured without text (a tool call)");
	is_int(tokens_estimate("Hello world!", 12, 5), 4 + 3,
	       "a content_mp shorter than its text adds nothing");
}

int main(void)
{
	test_english();
	test_chinese();
	test_mixed();
	test_invalid();
	test_structured();
	return tap_done();
}
