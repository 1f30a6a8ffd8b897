/* jobs/cmd_jobs: the job functions of the Administration API, registered
 * by main with mv_commands_register (commands/ cannot include jobs/). */
#ifndef MV_JOBS_CMD_JOBS_H
#define MV_JOBS_CMD_JOBS_H

#include "commands/commands.h"

extern const mv_command mv_commands_jobs[];

#endif
