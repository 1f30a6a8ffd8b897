/* sources/profiles: archiving profiles — what to archive from where, saved
 * (archive/profiles.c) and run through the one ingest path — and the
 * registry functions MailStore names for them: GetProfiles, CreateProfile,
 * DeleteProfile, SetProfileServerSideExecution, RunProfile,
 * RunTemporaryProfile, and our GetProfileTypes, which publishes each
 * connector's table of details.  commands/ cannot include sources/: main
 * registers the table with mv_commands_register. */
#ifndef MV_SOURCES_PROFILES_H
#define MV_SOURCES_PROFILES_H

#include "commands/commands.h"

extern const mv_command mv_commands_profiles[];

#endif
