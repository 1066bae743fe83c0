/*
 * config_doc.c - the documents the option table generates: `convd --help`,
 * the sample etc/convd.conf, the option list of convd.conf(5) and the
 * effective configuration of `convd --check-config`
 * (tests/unit/test_config checks that the files agree).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"

#define HELP_COL 40
#define HELP_WIDTH 79
#define SAMPLE_WIDTH 76

/*
 * Writes text word by word.  The current line already holds col columns;
 * lines end before width columns (a word longer than that gets a line of
 * its own), later lines start with indent.
 */
static void wrap(FILE *out, const char *text, size_t col, const char *indent,
		 size_t width)
{
	const char *p = text;
	bool line_empty = true;

	for (;;) {
		size_t wl;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		wl = strcspn(p, " ");
		if (!line_empty && col + 1 + wl > width) {
			fputc('\n', out);
			fputs(indent, out);
			col = strlen(indent);
			line_empty = true;
		}
		if (!line_empty) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, wl, out);
		col += wl;
		line_empty = false;
		p += wl;
	}
	fputc('\n', out);
}

/* The default as the file writes it ("" for an empty string). */
static const char *def_text(const struct config_option *o)
{
	return o->def[0] == '\0' ? "\"\"" : o->def;
}

void config_print_help(FILE *out)
{
	char indent[HELP_COL + 1];

	memset(indent, ' ', HELP_COL);
	indent[HELP_COL] = '\0';
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		int col;

		col = fprintf(out, "  [%s] %s = %s", o->section, o->name,
			      def_text(o));
		if (col < 0)
			return;
		if (col > HELP_COL - 2) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%*s", HELP_COL - col, "");
		wrap(out, o->doc, HELP_COL, indent, HELP_WIDTH);
	}
}

void config_print_sample(FILE *out)
{
	const char *section = NULL;

	fputs("# convd.conf - configuration of convd(8) and convctl(1); see "
	      "convd.conf(5).\n#\n# ", out);
	wrap(out,
	     "Every option is listed with its description and its default "
	     "value, commented out: remove the # and change the value to set "
	     "it. Values may be \"double quoted\", with \\\" and \\\\ "
	     "escapes. Times are in seconds unless an option says otherwise, "
	     "sizes in bytes with an optional K, M or G suffix (1024-based), "
	     "modes in octal, and booleans are yes or no. Comments (# or ;) "
	     "take whole lines. DATABASE_URL, and then DB_HOST, DB_PORT, "
	     "DB_NAME, DB_USER and DB_PASSWORD, in the environment override "
	     "[database]. `convd --check-config` prints the values in effect.",
	     2, "# ", SAMPLE_WIDTH);
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			section = o->section;
			fprintf(out, "\n[%s]\n# ", section);
			wrap(out, config_section_doc(section), 2, "# ",
			     SAMPLE_WIDTH);
		}
		fputs("\n# ", out);
		wrap(out, o->doc, 2, "# ", SAMPLE_WIDTH);
		fprintf(out, "# reloadable: %s\n",
			o->reloadable ? "yes" : "no");
		fprintf(out, "#%s = %s\n", o->name,
			o->example ? o->example : def_text(o));
	}
}

#define MAN_WIDTH 72

/* One word of roff text: backslashes escaped, a leading dot made inert. */
static void man_word(FILE *out, const char *s, size_t n, bool line_start)
{
	if (line_start && n > 0 && (s[0] == '.' || s[0] == '\''))
		fputs("\\&", out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			fputs("\\e", out);
		else
			fputc(s[i], out);
	}
}

/*
 * Each sentence on a line of its own, as mdoc wants it, and lines kept
 * short (a line break inside a sentence is just a space to roff).
 */
static void man_sentences(FILE *out, const char *doc)
{
	const char *p = doc;

	while (*p) {
		const char *stop = strstr(p, ". ");
		const char *end = stop ? stop + 1 : p + strlen(p);
		size_t col = 0;

		while (p < end) {
			size_t wl;

			while (p < end && *p == ' ')
				p++;
			if (p == end)
				break;
			wl = strcspn(p, " ");
			if (wl > (size_t)(end - p))
				wl = (size_t)(end - p);
			if (col > 0 && col + 1 + wl > MAN_WIDTH) {
				fputc('\n', out);
				col = 0;
			}
			if (col > 0) {
				fputc(' ', out);
				col++;
			}
			man_word(out, p, wl, col == 0);
			col += wl;
			p += wl;
		}
		fputc('\n', out);
		while (*p == ' ')
			p++;
	}
}

void config_print_man(FILE *out)
{
	const char *section = NULL;

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			if (section)
				fputs(".El\n", out);
			section = o->section;
			fprintf(out, ".Ss \\&[%s]\\&\n", section);
			man_sentences(out, config_section_doc(section));
			fputs(".Bl -tag -width Ds\n", out);
		}
		fprintf(out, ".It Cm %s Ns = Ns ", o->name);
		if (o->def[0] == '\0') {
			fputs("Qq \"\"\n", out);
		} else {
			fputs("Ar ", out);
			man_word(out, o->def, strlen(o->def), false);
			fputc('\n', out);
		}
		man_sentences(out, o->doc);
		fprintf(out, "Reloadable: %s.\n", o->reloadable ? "yes" : "no");
	}
	if (section)
		fputs(".El\n", out);
}

void config_print_effective(FILE *out, const struct config *cfg)
{
	const char *section = NULL;
	char buf[2 * CONFIG_MAX_LINE + 8];

	fprintf(out, "# effective configuration (%s%s)\n",
		cfg->path ? "file " : "defaults, no file",
		cfg->path ? cfg->path : "");
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			section = o->section;
			fprintf(out, "\n[%s]\n", section);
		}
		config_format_value(cfg, o, buf, sizeof(buf));
		fprintf(out, "%s = %s\n", o->name, buf);
	}
}
