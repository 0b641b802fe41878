//! Helpers shared by the clip archive's integration tests: who is who in discord-sim's
//! guilds (members, and managers through a role with Manage Server).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use discord_sim::{RoleSpec, Sim, Snowflake};

/// Discord's Manage Server permission bit.
pub const MANAGE_GUILD: u64 = 1 << 5;

/// Makes `user` a manager of `guild`: a role `role` with Manage Server, given to them.
pub fn make_manager(sim: &Sim, guild: Snowflake, user: Snowflake, role: &str) {
    let role = sim
        .create_role(guild, RoleSpec::new(role, MANAGE_GUILD))
        .unwrap();
    sim.add_member_role(guild, user, role).unwrap();
}

/// A new user `name`, a member of `guild`, managing it (a role `{name} mods` of their
/// own) when `manager`.
pub fn guild_member(sim: &Sim, guild: Snowflake, name: &str, manager: bool) -> Snowflake {
    let user = sim.create_user(name);
    sim.add_member(guild, user).unwrap();
    if manager {
        make_manager(sim, guild, user, &format!("{name} mods"));
    }
    user
}
