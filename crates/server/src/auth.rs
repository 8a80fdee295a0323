//! Console authentication: named users, bearer tokens, password login.
//!
//! - The **console token** belongs to the first user (`supervisor` by default): preset with
//!   `WATCHFLOOR_CONSOLE_TOKEN`, else read from `<data dir>/console-token`, else generated at
//!   first start (32 random bytes, hex) and written there with mode 0600. Its value is never
//!   logged; the path is.
//! - **Users** in the config file (`[[users]] name, password_hash, line`) log in with
//!   `POST /api/login {"user","password"}` and get a session token (12 h). `password_hash` is an
//!   argon2 PHC string (`watchfloor hash-password` makes one).
//! - Clients send `Authorization: Bearer <token>`. Tokens are kept only as SHA-256 digests.
//! - Every login, failed login and logout is audited (CJIS 5.4).
//! - Sign-in attempts are limited ([`SignInLimits`]): per address and per user name, and at most
//!   a few argon2 verifications (19 MiB and ~16 ms each) run at once; an unknown user is checked
//!   against a dummy hash so the answer takes as long as for a known one (issue 15).

use std::collections::HashMap;
use std::path::Path;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use watchfloor_bridge::model::Secret;

/// How long a password login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// What a user may do (issue 20; CJIS Security Policy 5.5, least privilege). A user may hold
/// several. The route table (`routes.rs`) says which roles each route allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize, strum::IntoStaticStr, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Live calls: listen, talk and take over, dispatch, whisper, acknowledge, transfer, hang
    /// up; reads records.
    Supervisor,
    /// Records, review and quality assurance; no live control, and no listening to a live call
    /// unless also a supervisor.
    Reviewer,
    /// Settings, protocol cards, users, the unit roster, retention and legal hold, the audit log.
    Admin,
}

impl Role {
    /// The role's name as in the config file and the API (`supervisor`, `reviewer`, `admin`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The roles of a user listed without any: supervisor, what every user could do before roles
/// (a warning at start says to set them).
pub fn default_roles() -> Vec<Role> {
    vec![Role::Supervisor]
}

/// A console user who signs in with a password: seeded from the config file's `[[users]]`, kept
/// in the store, changed by an administrator (`users.rs`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name; shown in the audit trail and as the EIDO agent.
    pub name: String,
    /// argon2 PHC hash of the password.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// The user's own phone line (E.164): where "take over" sends a call.
    #[serde(default)]
    pub line: Option<String>,
    /// What the user may do (`roles = ["reviewer"]`); none listed: `["supervisor"]`.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// A disabled user cannot sign in (an administrator's choice; the user is kept for the
    /// audit trail).
    #[serde(default)]
    pub disabled: bool,
}

impl UserConfig {
    /// The user's roles, the default when none are listed.
    pub fn effective_roles(&self) -> Vec<Role> {
        if self.roles.is_empty() { default_roles() } else { self.roles.clone() }
    }
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// Their own line, if configured.
    pub line: Option<String>,
    /// What they may do.
    pub roles: Vec<Role>,
}

impl User {
    /// Whether the user holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the user holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Sign-in attempts per client address per minute (a desk's mistyped password, several users
/// behind one proxy).
pub const SIGN_IN_PER_ADDRESS_PER_MINUTE: u32 = 30;
/// Sign-in attempts per user name per minute (each name, known or not, its own budget).
pub const SIGN_IN_PER_USER_PER_MINUTE: u32 = 10;
/// How long a sign-in may wait for its verifier thread's answer before it is refused (503).
pub const VERIFY_WAIT: Duration = Duration::from_secs(5);

/// Why a sign-in attempt was not even checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInRefused {
    /// Too many attempts from this address or for this user: try again after the given time.
    #[error("too many sign-in attempts: try again in {0} s")]
    TooMany(u64),
    /// The verifier threads' queue was full, or no answer came within [`VERIFY_WAIT`].
    #[error("sign-in is busy: try again")]
    Busy,
}

/// Bounds on password sign-in: attempts per address and per user (governor GCRA buckets) and
/// argon2 verifications, which run only on a few threads of their own ([`Verifier`]).
pub struct SignInLimits {
    by_address: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    by_user: governor::DefaultKeyedRateLimiter<String>,
    verifier: Verifier,
}

/// One verification: the stored PHC hash, the password offered, where the answer goes.
type VerifyJob = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Verifications waiting for a verifier thread before a sign-in is refused as busy.
pub const VERIFY_QUEUE: usize = 64;

/// The argon2 verifier threads: one per core (at most 4), fed by a bounded queue. Each
/// verification allocates 19 MiB; on tokio's blocking pool, whose threads come and go, glibc
/// kept those blocks in many threads' arenas and a sign-in flood left the server hundreds of MiB
/// larger (measured: 18 → 324 MiB after 6 000 attempts). On a fixed few threads the block is
/// reused. The threads end when the [`Auth`] is dropped.
struct Verifier {
    jobs: std::sync::mpsc::SyncSender<VerifyJob>,
}

impl Verifier {
    fn start(threads: usize) -> Verifier {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<VerifyJob>(VERIFY_QUEUE);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                // The thread's own argon2 memory (19 MiB with the default parameters), reused.
                let mut memory = Vec::new();
                loop {
                    let job = rx.lock().recv();
                    let Ok((hash, password, reply)) = job else { return };
                    let _ = reply.send(verify(&mut memory, &hash, &password));
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password verifier thread");
            }
        }
        Verifier { jobs }
    }
}

/// Whether `password` matches the argon2 PHC string `hash` (false for a hash that does not
/// parse), computed in `memory` (resized to the hash's `m` parameter and kept by the caller):
/// `Argon2::verify_password` allocates its 19 MiB anew each time, and glibc kept every one
/// (measured: 18 → 214 MiB RSS after ten sequential verifications). The comparison is
/// constant-time (`password_hash::Output`).
fn verify(memory: &mut Vec<argon2::Block>, hash: &str, password: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else { return false };
    let (Ok(params), Some(expected), Some(salt)) = (argon2::Params::try_from(&h), h.hash, h.salt) else { return false };
    let Ok(algorithm) = argon2::Algorithm::try_from(h.algorithm) else { return false };
    let Ok(version) = h.version.map(argon2::Version::try_from).transpose() else { return false };
    let mut salt_buf = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    memory.resize(params.block_count(), argon2::Block::default());
    let mut out = vec![0u8; expected.len()];
    let ctx = argon2::Argon2::new(algorithm, version.unwrap_or_default(), params);
    ctx.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..]).is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

impl Default for SignInLimits {
    fn default() -> Self {
        let per_minute = |n: u32| governor::Quota::per_minute(std::num::NonZeroU32::new(n).expect("constant is non-zero"));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        SignInLimits {
            by_address: governor::RateLimiter::keyed(per_minute(SIGN_IN_PER_ADDRESS_PER_MINUTE)),
            by_user: governor::RateLimiter::keyed(per_minute(SIGN_IN_PER_USER_PER_MINUTE)),
            verifier: Verifier::start(cores),
        }
    }
}

/// A password sign-in's session.
struct Session {
    user: User,
    /// When it began, ms since the Unix epoch.
    started_at_ms: u64,
    expires: Instant,
    /// Cancelled when the session ends (sign-out, expiry, revocation).
    ended: CancellationToken,
}

/// A session as an administrator sees it (`GET /api/sessions`): never its token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct SessionInfo {
    /// The session's id: the first 8 bytes of its token's SHA-256, hex (names it for
    /// revocation; says nothing of the token).
    pub id: String,
    /// The user it signs in.
    pub user: String,
    /// When it began, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Seconds until it expires.
    pub expires_in_s: u64,
}

/// Failed sign-ins of one name, and the lock they led to.
#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Failed sign-ins in a row that lock a name (CJIS Security Policy 5.5.3: at most 5).
pub const LOCKOUT_AFTER: u32 = 5;
/// How long a locked name stays locked (CJIS 5.5.3: at least 10 minutes).
pub const LOCKOUT_FOR: Duration = Duration::from_secs(10 * 60);
/// The shortest password an administrator may set (issue 20; NIST SP 800-63B asks at least 8).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Checks a new password for `name` (NIST SP 800-63B §5.1.1.2): at least
/// [`MIN_PASSWORD_CHARS`] characters, and not guessable — not a common password, a dictionary
/// word, a keyboard pattern or a repeat, nor built on the user's name (zxcvbn's estimate, whose
/// lists include the 30,000 most common passwords, must be at least 3 of 4: more than 10⁸
/// guesses). Returns the reason when it is refused.
pub fn check_password(name: &str, password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("a password needs at least {MIN_PASSWORD_CHARS} characters"));
    }
    let estimate = zxcvbn::zxcvbn(password, &[name, "watchfloor"]);
    if (estimate.score() as u8) < 3 {
        let why = estimate.feedback().and_then(|f| f.warning()).map(|w| format!(": {w}")).unwrap_or_default();
        return Err(format!("the password is too easy to guess{why}"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The authenticator.
pub struct Auth {
    /// SHA-256 of a long-lived token → user.
    tokens: HashMap<[u8; 32], User>,
    /// The users who sign in with a password (the config seeds them; an administrator changes
    /// them).
    users: parking_lot::RwLock<Vec<UserConfig>>,
    /// SHA-256 of a session token → its session.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// Failed sign-ins by name (known or not: a lock says nothing about which names exist).
    failures: Mutex<HashMap<String, Failures>>,
    /// SHA-256 of the tokens whose console is locked (session lock, CJIS 5.5.5): until its user
    /// unlocks it, such a token signs in nothing but the unlock and the sign-out.
    locked_tokens: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// SHA-256 of the console token (what its user unlocks with when they have no password).
    console_digest: [u8; 32],
    /// The console token's user and roles, for the sessions a one-time sign-in link opens.
    console_user: User,
    /// SHA-256 of the one-time sign-in links not yet used → their expiry.
    sign_in_links: Mutex<HashMap<[u8; 32], Instant>>,
    /// SHA-256 of a live-feed ticket → (user, expiry, its session's end); each is used once.
    tickets: Mutex<HashMap<[u8; 32], (User, Instant, CancellationToken)>>,
    /// The end of the console token's "session" (never, today: the token is not revocable).
    console_session: CancellationToken,
    /// An argon2 hash of a random password: what an unknown user's password is checked against.
    dummy_hash: String,
    /// Bounds on sign-in attempts.
    limits: SignInLimits,
    /// argon2 verifications run so far.
    verifications: std::sync::atomic::AtomicU64,
}

/// How long a one-time sign-in link stays good.
pub const SIGN_IN_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a live-feed ticket may wait to be used.
pub const TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Errors setting up authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read or written.
    #[error("console token file {0}: {1}")]
    TokenFile(String, std::io::Error),
}

/// Where the console token is stored.
pub fn token_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("console-token")
}

/// Reads or creates the console token (see the module docs). Returns it and whether it was new.
pub fn console_token(data_dir: &Path, preset: Option<&Secret>) -> Result<(Secret, bool), AuthError> {
    if let Some(t) = preset {
        return Ok((t.clone(), false));
    }
    let path = token_path(data_dir);
    let err = |e| AuthError::TokenFile(path.display().to_string(), e);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((Secret::new(t.trim()), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir).map_err(err)?;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(err)?;
    f.write_all(token.as_bytes()).map_err(err)?;
    Ok((Secret::new(token), true))
}

/// Hashes a password for the config file (argon2id, random salt).
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    // Invariant: 16 bytes is within the salt length limits.
    let salt = SaltString::encode_b64(&salt_bytes).expect("16-byte salt encodes");
    // Invariant: the default argon2 parameters and a fresh salt always hash.
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes").to_string()
}

impl Auth {
    /// An authenticator with the console token for `console_user` (with `console_roles`) and
    /// the configured users.
    pub fn new(console_token: &Secret, console_user: &str, console_roles: Vec<Role>, users: Vec<UserConfig>) -> Auth {
        let line = users.iter().find(|u| u.name == console_user).and_then(|u| u.line.clone());
        let desk = User { name: console_user.to_string(), line, roles: console_roles };
        let mut tokens = HashMap::new();
        tokens.insert(digest(console_token.expose()), desk.clone());
        let dummy: [u8; 16] = rand::random();
        let dummy_hash = hash_password(&dummy.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Auth {
            tokens,
            users: parking_lot::RwLock::new(users),
            sessions: Mutex::default(),
            failures: Mutex::default(),
            locked_tokens: Mutex::default(),
            console_digest: digest(console_token.expose()),
            console_user: desk,
            sign_in_links: Mutex::default(),
            tickets: Mutex::default(),
            console_session: CancellationToken::new(),
            dummy_hash,
            limits: SignInLimits::default(),
            verifications: Default::default(),
        }
    }

    /// Checks the sign-in budgets of `address` and of the name `name`. Call before
    /// [`Auth::sign_in`]; [`Auth::forget_idle_budgets`] keeps their memory bounded.
    pub fn admit_sign_in(&self, address: std::net::IpAddr, name: &str) -> Result<(), SignInRefused> {
        // Every name its own budget, known or not: a shared budget for unknown names would tell
        // which names exist (it empties; a known name's does not).
        let key = name.to_string();
        let wait = |n: governor::NotUntil<governor::clock::QuantaInstant>| n.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())).as_secs().max(1);
        self.limits.by_address.check_key(&address).map_err(|n| SignInRefused::TooMany(wait(n)))?;
        self.limits.by_user.check_key(&key).map_err(|n| SignInRefused::TooMany(wait(n)))?;
        Ok(())
    }

    /// Password sign-in with the argon2 verification on the verifier threads (refused as busy
    /// when [`VERIFY_QUEUE`] wait already or no answer comes within [`VERIFY_WAIT`]): the
    /// session and user, `Ok(None)` for a wrong user or password. An unknown user, or one
    /// without a password, is verified against a dummy hash (the time taken tells nothing).
    pub async fn sign_in(&self, name: &str, password: String) -> Result<Option<(Secret, User)>, SignInRefused> {
        let (hash, cfg) = self.stored_hash(name);
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.limits.verifier.jobs.try_send((hash, password, reply)).map_err(|_| SignInRefused::Busy)?;
        let verified = tokio::time::timeout(VERIFY_WAIT, answer).await.map_err(|_| SignInRefused::Busy)?.unwrap_or(false);
        self.verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(cfg.filter(|_| verified).map(|c| self.open_session(&c)))
    }

    /// The PHC hash a sign-in as `name` is checked against, and the user when it is theirs (not
    /// the dummy). A disabled user is checked against the dummy: they cannot sign in.
    fn stored_hash(&self, name: &str) -> (String, Option<UserConfig>) {
        let users = self.users.read();
        let cfg = users.iter().find(|u| u.name == name && !u.disabled).filter(|c| c.password_hash.as_deref().is_some_and(|h| PasswordHash::new(h).is_ok()));
        match cfg.and_then(|c| c.password_hash.clone()) {
            Some(h) => (h, cfg.cloned()),
            None => (self.dummy_hash.clone(), None),
        }
    }

    /// The password users as they stand.
    pub fn users(&self) -> Vec<UserConfig> {
        self.users.read().clone()
    }

    /// Adds a user or replaces the one of the same name. Their sessions end when their roles,
    /// password or line change or they are disabled (a session carries what its user could do
    /// when it began); a lock on the name is lifted when the password changes. Returns how many
    /// sessions ended.
    pub fn put_user(&self, user: UserConfig) -> usize {
        let mut users = self.users.write();
        let old = users.iter().position(|u| u.name == user.name);
        let changed = old.is_some_and(|i| users[i] != user);
        if old.is_some_and(|i| users[i].password_hash != user.password_hash) {
            self.failures.lock().remove(&user.name);
        }
        let name = user.name.clone();
        match old {
            Some(i) => users[i] = user,
            None => users.push(user),
        }
        drop(users);
        if changed { self.end_sessions_of(&name) } else { 0 }
    }

    /// Ends every session of `name` (and the live feeds they opened); returns how many.
    pub fn end_sessions_of(&self, name: &str) -> usize {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|_, s| {
            let keep = s.user.name != name;
            if !keep {
                s.ended.cancel();
            }
            keep
        });
        before - sessions.len()
    }

    /// The password sessions open now, oldest first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let now = Instant::now();
        let mut v: Vec<SessionInfo> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.expires > now)
            .map(|(d, s)| SessionInfo { id: hex(&d[..8]), user: s.user.name.clone(), started_at_ms: s.started_at_ms, expires_in_s: s.expires.saturating_duration_since(now).as_secs() })
            .collect();
        v.sort_by_key(|s| s.started_at_ms);
        v
    }

    /// Ends the session whose [`SessionInfo::id`] is `id`; the user whose it was.
    pub fn revoke(&self, id: &str) -> Option<String> {
        let mut sessions = self.sessions.lock();
        let key = *sessions.keys().find(|d| hex(&d[..8]) == id)?;
        let s = sessions.remove(&key)?;
        s.ended.cancel();
        Some(s.user.name)
    }

    /// A one-time sign-in link's code for the console token's user (issue 20: a newcomer signs in
    /// from the terminal that started the server, without hunting for the token file): valid
    /// for [`SIGN_IN_LINK_TTL`], once. Only its digest is kept.
    pub fn issue_sign_in_link(&self) -> Secret {
        let code = hex(&rand::random::<[u8; 24]>());
        let mut links = self.sign_in_links.lock();
        let now = Instant::now();
        links.retain(|_, exp| *exp > now);
        links.insert(digest(&code), now + SIGN_IN_LINK_TTL);
        Secret::new(code)
    }

    /// Spends a one-time sign-in link: a new session for the console token's user (revocable,
    /// [`SESSION_TTL`] like a password sign-in). `None` when unknown, used or expired.
    pub fn redeem_sign_in_link(&self, code: &str) -> Option<(Secret, User)> {
        let exp = self.sign_in_links.lock().remove(&digest(code))?;
        if exp <= Instant::now() {
            return None;
        }
        let u = &self.console_user;
        let cfg = UserConfig { name: u.name.clone(), password_hash: None, line: u.line.clone(), roles: u.roles.clone(), disabled: false };
        Some(self.open_session(&cfg))
    }

    /// Locks the console of `token` (its user walked away; CJIS 5.5.5).
    pub fn lock_console(&self, token: &str) {
        self.locked_tokens.lock().insert(digest(token));
    }

    /// Whether the console of `token` is locked.
    pub fn console_locked(&self, token: &str) -> bool {
        self.locked_tokens.lock().contains(&digest(token))
    }

    /// Whether `name` signs in (and unlocks a locked console) with a password: false for the
    /// console token's user until an administrator gives it one.
    pub fn has_password(&self, name: &str) -> bool {
        self.users.read().iter().any(|u| u.name == name && u.password_hash.is_some() && !u.disabled)
    }

    /// Unlocks the console of `token` for its user `user` with `secret`: their password, or the
    /// console token itself for its user when they have no password. `Ok(true)` when it was
    /// right (the console is unlocked), `Ok(false)` when not; refused as busy like a sign-in.
    pub async fn unlock_console(&self, token: &str, user: &str, secret: String) -> Result<bool, SignInRefused> {
        let right = if self.has_password(user) {
            let (hash, cfg) = self.stored_hash(user);
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.limits.verifier.jobs.try_send((hash, secret, reply)).map_err(|_| SignInRefused::Busy)?;
            let verified = tokio::time::timeout(VERIFY_WAIT, answer).await.map_err(|_| SignInRefused::Busy)?.unwrap_or(false);
            self.verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            verified && cfg.is_some()
        } else {
            // Constant-time enough: both sides are SHA-256 digests, compared whole.
            self.tokens.get(&digest(&secret)).is_some_and(|u| u.name == user) && digest(&secret) == self.console_digest
        };
        if right {
            self.locked_tokens.lock().remove(&digest(token));
        }
        Ok(right)
    }

    /// How long `name` stays locked after too many failed sign-ins (none: not locked).
    pub fn locked(&self, name: &str, now: Instant) -> Option<Duration> {
        let until = self.failures.lock().get(name)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed sign-in of `name`; true when it locks the name ([`LOCKOUT_AFTER`] in a
    /// row: locked for [`LOCKOUT_FOR`]).
    pub fn note_failure(&self, name: &str, now: Instant) -> bool {
        let mut failures = self.failures.lock();
        // Bounded: past 10,000 names (a spray of made-up names), unlocked ones are forgotten.
        if failures.len() > 10_000 {
            failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
        }
        let f = failures.entry(name.to_string()).or_default();
        if f.locked_until.is_some_and(|u| u <= now) {
            *f = Failures::default();
        }
        f.count += 1;
        if f.count >= LOCKOUT_AFTER && f.locked_until.is_none() {
            f.locked_until = Some(now + LOCKOUT_FOR);
            return true;
        }
        false
    }

    /// A sign-in of `name` succeeded: its failures are forgotten.
    pub fn note_success(&self, name: &str) {
        self.failures.lock().remove(name);
    }

    /// A new session for a user whose password was verified. Its end is signalled at sign-out
    /// or when [`SESSION_TTL`] runs out (a timer on the runtime, when there is one), so the live
    /// feeds it opened close at expiry too.
    fn open_session(&self, cfg: &UserConfig) -> (Secret, User) {
        let started_at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let user = User { name: cfg.name.clone(), line: cfg.line.clone(), roles: cfg.effective_roles() };
        let ended = CancellationToken::new();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (ended, expiry) = (ended.clone(), tokio::time::Instant::now() + SESSION_TTL);
            rt.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(expiry) => ended.cancel(),
                    _ = ended.cancelled() => {}
                }
            });
        }
        self.sessions.lock().insert(digest(&token), Session { user: user.clone(), started_at_ms, expires: Instant::now() + SESSION_TTL, ended });
        (Secret::new(token), user)
    }

    /// The user a bearer token belongs to.
    pub fn check(&self, token: &str) -> Option<User> {
        self.check_session(token).map(|(u, _)| u)
    }

    /// The user a bearer token belongs to, and a token cancelled when that sign-in ends (sign-out
    /// or expiry found): what a live feed opened with it watches, to close then (issue 15).
    pub fn check_session(&self, token: &str) -> Option<(User, CancellationToken)> {
        let d = digest(token);
        if let Some(u) = self.tokens.get(&d) {
            return Some((u.clone(), self.console_session.clone()));
        }
        let mut sessions = self.sessions.lock();
        match sessions.get(&d) {
            Some(s) if Instant::now() < s.expires => Some((s.user.clone(), s.ended.clone())),
            Some(_) => {
                if let Some(s) = sessions.remove(&d) {
                    s.ended.cancel();
                }
                None
            }
            None => None,
        }
    }

    /// A single-use ticket for the live feed's WebSocket (a browser cannot send an
    /// `Authorization` header on a WebSocket): valid for [`TICKET_TTL`], so the long-lived
    /// token never appears in a URL. The feed it opens ends with `session` (the sign-in that
    /// asked for it).
    pub fn issue_ticket(&self, user: &User, session: &CancellationToken) -> Secret {
        let bytes: [u8; 24] = rand::random();
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tickets = self.tickets.lock();
        let now = Instant::now();
        tickets.retain(|_, (_, exp, _)| *exp > now);
        tickets.insert(digest(&ticket), (user.clone(), now + TICKET_TTL, session.clone()));
        Secret::new(ticket)
    }

    /// The user of a live-feed ticket and the end of its sign-in; the ticket is then spent.
    /// `None` if unknown, spent, expired, or its sign-in has ended.
    pub fn redeem_ticket(&self, ticket: &str) -> Option<(User, CancellationToken)> {
        let mut tickets = self.tickets.lock();
        match tickets.remove(&digest(ticket)) {
            Some((u, exp, ended)) if Instant::now() < exp && !ended.is_cancelled() => Some((u, ended)),
            _ => None,
        }
    }

    /// Password login on the calling thread (blocking: one argon2 verification, also for an
    /// unknown user or one without a password): a new session token for the user, or `None`.
    /// The server uses [`Auth::sign_in`].
    pub fn login(&self, name: &str, password: &str) -> Option<(Secret, User)> {
        let (hash, cfg) = self.stored_hash(name);
        let verified = verify(&mut Vec::new(), &hash, password);
        self.verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cfg.filter(|_| verified).map(|c| self.open_session(&c))
    }

    /// Drops the sign-in budgets of addresses and names not seen lately (called every few
    /// seconds, so sprayed names and addresses do not grow memory).
    pub fn forget_idle_budgets(&self) {
        self.limits.by_address.retain_recent();
        self.limits.by_user.retain_recent();
    }

    /// argon2 verifications run so far (each sign-in that was admitted runs exactly one).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends a session, and with it the live feeds it opened (a long-lived token cannot be
    /// logged out).
    pub fn logout(&self, token: &str) -> bool {
        self.locked_tokens.lock().remove(&digest(token));
        match self.sessions.lock().remove(&digest(token)) {
            Some(s) => {
                s.ended.cancel();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_ends_at_its_expiry_and_its_feeds_with_it() {
        let users = vec![UserConfig { name: "jdoe".into(), password_hash: Some(hash_password("correct horse battery")), line: None, roles: vec![], disabled: false }];
        let auth = Auth::new(&Secret::new("tok"), "supervisor", vec![Role::Supervisor], users);
        let (session, _) = auth.login("jdoe", "correct horse battery").unwrap();
        let (_, ended) = auth.check_session(session.expose()).unwrap();
        let ticket = auth.issue_ticket(&auth.check(session.expose()).unwrap(), &ended);
        tokio::time::advance(SESSION_TTL - Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert!(!ended.is_cancelled());
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::task::yield_now().await;
        assert!(ended.is_cancelled(), "a feed watching the session closes at expiry");
        assert!(auth.redeem_ticket(ticket.expose()).is_none());
    }

    #[test]
    fn five_failures_lock_a_name_for_ten_minutes_and_a_success_forgets_them() {
        let auth = Auth::new(&Secret::new("tok"), "supervisor", vec![Role::Supervisor], Vec::new());
        let t0 = Instant::now();
        for i in 1..LOCKOUT_AFTER {
            assert!(!auth.note_failure("jdoe", t0), "failure {i} does not lock");
        }
        auth.note_success("jdoe");
        for _ in 1..LOCKOUT_AFTER {
            auth.note_failure("jdoe", t0);
        }
        assert!(auth.locked("jdoe", t0).is_none(), "a success started the count again");
        assert!(auth.note_failure("jdoe", t0), "the fifth in a row locks");
        assert_eq!(auth.locked("jdoe", t0 + Duration::from_secs(60)), Some(LOCKOUT_FOR - Duration::from_secs(60)));
        assert!(auth.locked("other", t0).is_none());
        let after = t0 + LOCKOUT_FOR + Duration::from_secs(1);
        assert!(auth.locked("jdoe", after).is_none(), "unlocked after 10 minutes");
        assert!(!auth.note_failure("jdoe", after), "the count starts again after a lock");
    }

    #[test]
    fn the_password_policy_wants_length_and_no_common_password() {
        assert!(check_password("jdoe", "short 1").unwrap_err().contains("12 characters"));
        assert!(check_password("jdoe", "password1234").unwrap_err().contains("too easy"));
        assert!(check_password("jdoe", "qwertyuiop12").unwrap_err().contains("too easy"));
        assert!(check_password("jdoejdoejdoe", "jdoejdoejdoe").is_err(), "the user's own name");
        assert!(check_password("jdoe", "harbor lantern mosaic 42").is_ok());
    }

    #[test]
    fn token_file_is_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, new1) = console_token(dir.path(), None).unwrap();
        let (t2, new2) = console_token(dir.path(), None).unwrap();
        assert!(new1 && !new2);
        assert_eq!(t1, t2);
        assert_eq!(t1.expose().len(), 64);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(token_path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (t3, _) = console_token(dir.path(), Some(&Secret::new("preset"))).unwrap();
        assert_eq!(t3.expose(), "preset");
    }

    #[test]
    fn tokens_and_passwords() {
        let users = vec![UserConfig { name: "jdoe".into(), password_hash: Some(hash_password("correct horse")), line: Some("+15550009999".into()), roles: vec![], disabled: false }];
        let auth = Auth::new(&Secret::new("tok"), "supervisor", vec![Role::Supervisor], users);
        assert_eq!(auth.check("tok").unwrap().name, "supervisor");
        assert!(auth.check("nope").is_none());
        assert!(auth.login("jdoe", "wrong").is_none());
        assert!(auth.login("nobody", "x").is_none());
        let (session, user) = auth.login("jdoe", "correct horse").unwrap();
        assert_eq!(user.line.as_deref(), Some("+15550009999"));
        assert_eq!(auth.check(session.expose()).unwrap().name, "jdoe");
        assert!(auth.logout(session.expose()));
        assert!(auth.check(session.expose()).is_none());
    }
}
