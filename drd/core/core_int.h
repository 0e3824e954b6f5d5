/* Private to drd/core: helpers shared by its files. */
#ifndef DRD_CORE_INT_H
#define DRD_CORE_INT_H

/* Shows line as the terminal's live progress line (rewritten in place; dr_log prints its lines
 * above it); final ends it with a newline and stops the redrawing; line NULL (with final) clears
 * it. */
void core_log_live(const char *line, int final);

#endif
