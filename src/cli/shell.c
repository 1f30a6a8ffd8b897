/* cli/shell: `mailvault shell` — the interactive management shell.
 *
 * Each line is `Function --arg=value ...`, split into words the way a POSIX
 * shell would (so --name="John Doe" is one word), and run through
 * mv_cli_run_function, the path `mailvault cmd` takes: both accept and refuse
 * the same input and print the same JSON envelope.
 *
 * On a terminal GNU readline adds line editing, a history kept in
 * ~/.mailvault_history, and completion of function names, argument names and
 * allowed values, all taken from the command registry so the shell never has
 * its own list to fall out of date.  From a pipe the lines are read plainly
 * and stdout carries only the envelopes (and what `help` prints), so scripts
 * can feed it and test its exit status. */
#include "cli/cli.h"
#include "commands/commands.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/readline.h>
#include <readline/history.h>

#define SHELL_PROMPT "mailvault> "
#define HISTORY_FILE_NAME ".mailvault_history"
#define HISTORY_MAX_ENTRIES 1000

typedef struct shell_session {
	mv_instance *inst;
	int last_status;     /* exit status of the last function or help run; 0 before any */
	int history_added;   /* lines added to the history in this session */
} shell_session;

typedef enum { SHELL_GO_ON, SHELL_LEAVE } shell_next;

/* ---- help ------------------------------------------------------------------- */

/* The descriptions are the registry's (mv_command_help_text,
 * mv_command_table_text), the same `mailvault cmd --list` and
 * `cmd Function --help` print. */
static void print_function_list(void)
{
	json_t *meta = mv_command_metadata();
	char *table = mv_command_table_text(meta);
	printf("Functions ('help Function' or 'Function --help' describes one; syntax: Function --arg=value "
	       "--flag=true):\n%s", table);
	printf("Shell: help [Function], exit, quit (or Ctrl-D).\n");
	g_free(table);
	json_decref(meta);
}

static void print_function_help(const mv_command *cmd)
{
	char *text = mv_command_help_text(cmd);
	fputs(text, stdout);
	g_free(text);
}

static int run_help(int argc, char **argv)
{
	if (argc == 1) {
		print_function_list();
		return MV_EXIT_OK;
	}
	if (argc > 2) {
		fprintf(stderr, "help: one function name at most ('help' lists them)\n");
		return MV_EXIT_USAGE;
	}
	const mv_command *cmd = mv_command_find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "help: unknown function '%s' ('help' lists them)\n", argv[1]);
		return MV_EXIT_USAGE;
	}
	print_function_help(cmd);
	return MV_EXIT_OK;
}

/* ---- one line --------------------------------------------------------------- */

/* A line that cannot be split is answered like a function's refusal, so a
 * script reading stdout sees one envelope per line that did something. */
static void print_split_error(const char *reason)
{
	char *message = g_strdup_printf("cannot split the line into words: %s", reason);
	json_t *envelope = mv_command_error_envelope(message, NULL);
	char *text = envelope ? json_dumps(envelope, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (text)
		printf("%s\n", text);
	else
		fprintf(stderr, "mailvault shell: %s\n", message);
	free(text);
	json_decref(envelope);
	g_free(message);
}

static shell_next run_line(shell_session *s, const char *line)
{
	int argc = 0;
	char **argv = NULL;
	GError *err = NULL;
	if (!g_shell_parse_argv(line, &argc, &argv, &err)) {
		/* Blank lines and lines holding only a # comment split into nothing. */
		if (!g_error_matches(err, G_SHELL_ERROR, G_SHELL_ERROR_EMPTY_STRING)) {
			print_split_error(err->message);
			s->last_status = MV_EXIT_USAGE;
		}
		g_error_free(err);
		return SHELL_GO_ON;
	}
	shell_next next = SHELL_GO_ON;
	if (strcmp(argv[0], "exit") == 0 || strcmp(argv[0], "quit") == 0)
		next = SHELL_LEAVE;
	else if (strcmp(argv[0], "help") == 0)
		s->last_status = run_help(argc, argv);
	else
		s->last_status = mv_cli_run_function(s->inst, argc, argv);
	g_strfreev(argv);
	fflush(stdout);
	return next;
}

/* ---- input that is not a terminal -------------------------------------------- */

static void run_plain(shell_session *s)
{
	char *line = NULL;
	size_t capacity = 0;
	ssize_t length;
	while ((length = getline(&line, &capacity, stdin)) >= 0) {
		while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
			line[--length] = '\0';
		if (strlen(line) != (size_t)length) {
			/* The rest of a line after a NUL would silently vanish. */
			print_split_error("the line contains a NUL byte");
			s->last_status = MV_EXIT_USAGE;
			continue;
		}
		if (run_line(s, line) == SHELL_LEAVE)
			break;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "mailvault shell: reading stdin: %s\n", g_strerror(errno));
		s->last_status = MV_EXIT_FAIL;
	}
	free(line);
}

/* ---- history ---------------------------------------------------------------- */

/* NULL when history must not be kept on disk ($MAILVAULT_HISTORY set empty). */
static char *history_path(void)
{
	const char *configured = g_getenv("MAILVAULT_HISTORY");
	if (configured)
		return *configured ? g_strdup(configured) : NULL;
	return g_build_filename(g_get_home_dir(), HISTORY_FILE_NAME, NULL);
}

static void history_load(const char *path)
{
	using_history();
	stifle_history(HISTORY_MAX_ENTRIES);
	if (!path)
		return;
	int rc = read_history(path);
	if (rc != 0 && rc != ENOENT)
		mv_log_debug("shell history %s not read: %s", path, g_strerror(rc));
}

/* Appends rather than rewrites, so two shells closing one after the other
 * both keep their lines; the file is then cut to the newest entries.  A
 * history that cannot be written is not worth failing the session for. */
static void history_save(const char *path, int added)
{
	if (!path || added == 0)
		return;
	int rc = append_history(MIN(added, history_length), path);
	if (rc == ENOENT)
		rc = write_history(path);   /* creates the file, mode 0600 */
	if (rc == 0)
		rc = history_truncate_file(path, HISTORY_MAX_ENTRIES);
	if (rc != 0)
		mv_log_debug("shell history %s not written: %s", path, g_strerror(rc));
}

/* Kept without the blank a completion leaves at the end, and not twice in a row. */
static void remember_line(shell_session *s, const char *line)
{
	/* Secret arguments typed must not end up in a file on disk; the whole
	 * line is checked, since a line whose quotes do not close cannot be
	 * split into arguments. */
	if (mv_command_text_may_hold_secret(line))
		return;
	char *entry = g_strchomp(g_strdup(line));
	const char *first = entry;
	while (g_ascii_isspace(*first))
		first++;
	HIST_ENTRY *previous = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
	if (*first && !(previous && strcmp(previous->line, entry) == 0)) {
		add_history(entry);
		s->history_added++;
	}
	g_free(entry);
}

/* ---- completion ----------------------------------------------------------------- */

static GPtrArray *completion_candidates;   /* of the completion in progress */

static char *next_candidate(const char *text, int state)
{
	static guint next_index;
	if (state == 0)
		next_index = 0;
	size_t length = strlen(text);
	while (next_index < completion_candidates->len) {
		const char *candidate = g_ptr_array_index(completion_candidates, next_index++);
		/* readline frees matches with free(); a failed strdup ends the list. */
		if (g_ascii_strncasecmp(candidate, text, length) == 0)
			return strdup(candidate);
	}
	return NULL;
}

/* The words before the one being completed, split on blanks only: enough to
 * know the function and which arguments were given already. */
static GPtrArray *words_before(int end)
{
	char *prefix = g_strndup(rl_line_buffer, (gsize)end);
	char **parts = g_strsplit_set(prefix, " \t", -1);
	GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
	for (char **p = parts; *p; p++)
		if (**p)
			g_ptr_array_add(words, g_strdup(*p));
	g_strfreev(parts);
	g_free(prefix);
	return words;
}

static void add_function_names(bool with_shell_words)
{
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	for (size_t i = 0; i < n; i++)
		g_ptr_array_add(completion_candidates, g_strdup(all[i]->name));
	if (with_shell_words) {
		g_ptr_array_add(completion_candidates, g_strdup("help"));
		g_ptr_array_add(completion_candidates, g_strdup("exit"));
		g_ptr_array_add(completion_candidates, g_strdup("quit"));
	}
}

static bool argument_given(GPtrArray *words, const char *name)
{
	size_t length = strlen(name);
	for (guint i = 1; i < words->len; i++) {
		const char *w = g_ptr_array_index(words, i);
		if (g_str_has_prefix(w, "--") && strncmp(w + 2, name, length) == 0 &&
		    (w[2 + length] == '=' || w[2 + length] == '\0'))
			return true;
	}
	return false;
}

static void add_argument_names(const mv_command *cmd, GPtrArray *words)
{
	for (const mv_command_arg *a = cmd->args; a && a->name; a++)
		if (!argument_given(words, a->name))
			g_ptr_array_add(completion_candidates, g_strdup_printf("--%s=", a->name));
}

/* text is "--name=partial value": the whole word, since only blanks break words. */
static void add_allowed_values(const mv_command *cmd, const char *text)
{
	const char *equals = strchr(text, '=');
	for (const mv_command_arg *a = cmd->args; a && a->name; a++) {
		if (strlen(a->name) != (size_t)(equals - text - 2) || strncmp(a->name, text + 2, strlen(a->name)) != 0)
			continue;
		if (a->type == MV_ARG_BOOL) {
			g_ptr_array_add(completion_candidates, g_strdup_printf("--%s=true", a->name));
			g_ptr_array_add(completion_candidates, g_strdup_printf("--%s=false", a->name));
		}
		for (const char *const *v = a->allowed; v && *v; v++)
			g_ptr_array_add(completion_candidates, g_strdup_printf("--%s=%s", a->name, *v));
	}
}

static char **complete(const char *text, int start, int end)
{
	(void)end;
	rl_attempted_completion_over = 1;   /* never fall back to file names */
	g_ptr_array_set_size(completion_candidates, 0);
	GPtrArray *words = words_before(start);
	if (words->len == 0) {
		add_function_names(true);
	} else if (strcmp(g_ptr_array_index(words, 0), "help") == 0) {
		if (words->len == 1)
			add_function_names(false);
	} else {
		const mv_command *cmd = mv_command_find(g_ptr_array_index(words, 0));
		if (cmd && g_str_has_prefix(text, "--") && strchr(text, '=')) {
			add_allowed_values(cmd, text);
		} else if (cmd) {
			add_argument_names(cmd, words);
			/* The value is typed right after "--name=". */
			rl_completion_append_character = '\0';
		}
	}
	g_ptr_array_unref(words);
	return completion_candidates->len ? rl_completion_matches(text, next_candidate) : NULL;
}

/* ---- reading from the terminal ------------------------------------------------------ */

/* Set by the shell's signal handlers, which stay installed for the whole
 * session (mv_cli_run_function puts its own SIGINT handler in place while a
 * function runs and gives this one back), so a Ctrl-C between two prompts
 * never kills the shell. */
static volatile sig_atomic_t prompt_interrupted;
static volatile sig_atomic_t terminal_resized;
static char *completed_line;
static bool line_complete;

static void on_shell_signal(int sig)
{
	if (sig == SIGINT)
		prompt_interrupted = 1;
	else
		terminal_resized = 1;
}

static void on_line(char *line)
{
	completed_line = line;
	line_complete = true;
	/* Removed here so the function runs with the terminal in its normal
	 * mode and the next prompt comes after the function's output. */
	rl_callback_handler_remove();
}

/* Ctrl-C at the prompt: forget what was typed and show a fresh prompt. */
static void discard_typed_line(void)
{
	rl_free_line_state();
	rl_callback_sigcleanup();
	rl_cleanup_after_signal();
	rl_replace_line("", 0);
	rl_callback_handler_remove();
	fputc('\n', rl_outstream);
	rl_callback_handler_install(SHELL_PROMPT, on_line);
}

static void handle_prompt_signals(void)
{
	if (prompt_interrupted) {
		prompt_interrupted = 0;
		discard_typed_line();
	}
	if (terminal_resized) {
		terminal_resized = 0;
		rl_resize_terminal();
	}
}

static void wait_for_line(const sigset_t *mask_while_waiting)
{
	int fd = fileno(rl_instream);
	rl_callback_handler_install(SHELL_PROMPT, on_line);
	while (!line_complete) {
		fd_set readable;
		FD_ZERO(&readable);
		FD_SET(fd, &readable);
		int ready = pselect(fd + 1, &readable, NULL, NULL, NULL, mask_while_waiting);
		if (ready < 0 && errno == EINTR) {
			handle_prompt_signals();
			continue;
		}
		if (ready < 0) {
			fprintf(stderr, "mailvault shell: waiting for the terminal: %s\n", g_strerror(errno));
			rl_callback_handler_remove();
			return;   /* read as the end of input */
		}
		rl_callback_read_char();
	}
}

/* One line from the terminal (free() it), or NULL at the end of input.
 * SIGINT and SIGWINCH stay blocked except inside pselect, so neither slips
 * in between checking the flags and waiting, nor reaches readline's own
 * handlers mid-keystroke.  A Ctrl-C typed while the previous function's
 * output was printed is old news and dropped. */
static char *read_terminal_line(void)
{
	sigset_t prompt_signals, previous_mask;
	sigemptyset(&prompt_signals);
	sigaddset(&prompt_signals, SIGINT);
	sigaddset(&prompt_signals, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &prompt_signals, &previous_mask) != 0) {
		fprintf(stderr, "mailvault shell: cannot block signals: %s\n", g_strerror(errno));
		return NULL;
	}
	sigset_t mask_while_waiting = previous_mask;
	sigdelset(&mask_while_waiting, SIGINT);
	sigdelset(&mask_while_waiting, SIGWINCH);
	prompt_interrupted = 0;
	if (terminal_resized) {
		terminal_resized = 0;
		rl_reset_screen_size();
	}
	line_complete = false;
	completed_line = NULL;
	wait_for_line(&mask_while_waiting);
	if (sigprocmask(SIG_SETMASK, &previous_mask, NULL) != 0)
		fprintf(stderr, "mailvault shell: cannot unblock signals: %s\n", g_strerror(errno));
	return completed_line;
}

/* Returns false, with the reason printed, if the handlers cannot be set. */
static bool take_shell_signals(struct sigaction *previous_interrupt, struct sigaction *previous_resize)
{
	struct sigaction action = { .sa_handler = on_shell_signal };
	sigemptyset(&action.sa_mask);
	if (sigaction(SIGINT, &action, previous_interrupt) != 0 || sigaction(SIGWINCH, &action, previous_resize) != 0) {
		fprintf(stderr, "mailvault shell: cannot handle Ctrl-C: %s\n", g_strerror(errno));
		return false;
	}
	return true;
}

static void give_back_signals(const struct sigaction *previous_interrupt, const struct sigaction *previous_resize)
{
	if (sigaction(SIGINT, previous_interrupt, NULL) != 0 || sigaction(SIGWINCH, previous_resize, NULL) != 0)
		mv_log_debug("shell: signal handlers not restored: %s", g_strerror(errno));
}

static void setup_readline(void)
{
	rl_readline_name = "mailvault";
	rl_attempted_completion_function = complete;
	/* Only blanks separate words, so "--state=no" is one word and can
	 * complete to "--state=normal". */
	rl_completer_word_break_characters = " \t";
	if (rl_variable_bind("completion-ignore-case", "on") != 0)
		mv_log_debug("readline: completion-ignore-case not set");
	rl_instream = stdin;
	/* The prompt and echo stay on the terminal when stdout is a file. */
	rl_outstream = isatty(STDOUT_FILENO) ? stdout : stderr;
}

/* On a terminal the user saw every outcome: the status only says whether
 * the shell itself could run. */
static int run_interactive(shell_session *s)
{
	struct sigaction previous_interrupt, previous_resize;
	if (!take_shell_signals(&previous_interrupt, &previous_resize))
		return MV_EXIT_FAIL;
	setup_readline();
	completion_candidates = g_ptr_array_new_with_free_func(g_free);
	char *path = history_path();
	history_load(path);
	fprintf(rl_outstream, "mailvault shell: 'help' lists the functions, Tab completes, Ctrl-D or exit leaves.\n");
	for (;;) {
		char *line = read_terminal_line();
		if (!line) {
			fputc('\n', rl_outstream);
			break;
		}
		remember_line(s, line);
		shell_next next = run_line(s, line);
		free(line);
		if (next == SHELL_LEAVE)
			break;
	}
	history_save(path, s->history_added);
	g_free(path);
	g_ptr_array_unref(completion_candidates);
	completion_candidates = NULL;
	clear_history();
	give_back_signals(&previous_interrupt, &previous_resize);
	return MV_EXIT_OK;
}

int mv_cli_shell(const mv_cli_globals *g, int argc, char **argv)
{
	GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
	if (!mv_cli_parse("shell", "", "The management shell: one Administration API function per line, "
	                  "'Function --arg=value --flag=true', each answered with its JSON envelope. 'help' "
	                  "lists the functions. On a terminal: line editing, Tab completion and a history in "
	                  "$MAILVAULT_HISTORY (default ~/.mailvault_history; set empty to keep none). From a pipe "
	                  "the exit status is 1 if the last function failed, else 0.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc != 1) {
		fprintf(stderr, "usage: mailvault shell [--data-dir DIR]\n");
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	shell_session session = { .inst = inst };
	int rc;
	if (isatty(STDIN_FILENO)) {
		rc = run_interactive(&session);
	} else {
		run_plain(&session);
		/* A script needs to know whether the last function succeeded. */
		rc = session.last_status == MV_EXIT_OK ? MV_EXIT_OK : MV_EXIT_FAIL;
	}
	mv_instance_close(&inst);
	return rc;
}
