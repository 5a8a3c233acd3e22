//! SSH to a host running Docker Compose. The repository gets `deploy/pipewright/`:
//! `ssh-deploy.sh` (run by the deploy job: checks its inputs, pins the host key, uploads
//! the release and runs the host-side script), `remote-deploy.sh` (on the host: start the
//! new release in the idle blue/green slot, probe its health endpoint, switch the proxy,
//! roll back when the probe fails), and the two compose files. The image comes from the
//! forge's registry, published by the image job the deploy job needs.

use super::{
    CredentialField, DeployContext, DeployJob, DeployTarget, Environment, Strategy, TargetSpec,
    Wire,
};
use crate::generate::GeneratedFile;

/// Where the files go in the repository.
pub const DIR: &str = "deploy/pipewright";

/// The CI-side script.
pub const SSH_DEPLOY_SH: &str = include_str!("../../templates/deploy/ssh-deploy.sh");
/// The host-side script.
pub const REMOTE_DEPLOY_SH: &str = include_str!("../../templates/deploy/remote-deploy.sh");
/// The app's compose file (one slot).
pub const COMPOSE_YML: &str = include_str!("../../templates/deploy/compose.yml");
/// The proxy's compose file.
pub const PROXY_COMPOSE_YML: &str = include_str!("../../templates/deploy/proxy.compose.yml");

fn private_key(v: &str) -> Result<(), String> {
    let t = v.trim();
    if t.starts_with("-----BEGIN ") && t.contains("PRIVATE KEY-----") && t.ends_with("-----") {
        if t.contains("ENCRYPTED") {
            Err("is protected by a passphrase; a deploy key must not be".into())
        } else {
            Ok(())
        }
    } else {
        Err("must be a PEM/OpenSSH private key (-----BEGIN … PRIVATE KEY-----)".into())
    }
}

fn known_hosts(v: &str) -> Result<(), String> {
    let lines: Vec<&str> = v.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty()
        && lines.len() <= 20
        && lines.iter().all(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && (f[1].starts_with("ssh-") || f[1].starts_with("ecdsa-"))
        })
    {
        Ok(())
    } else {
        Err("must be known_hosts lines (`ssh-keyscan -p PORT HOST` prints them)".into())
    }
}

fn host(v: &str) -> Result<(), String> {
    if !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
    {
        Ok(())
    } else {
        Err("must be a host name or IP address".into())
    }
}

fn user(v: &str) -> Result<(), String> {
    if !v.is_empty()
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        Ok(())
    } else {
        Err("must be a Unix user name".into())
    }
}

fn port(v: &str) -> Result<(), String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("must be a port number".into()),
    }
}

/// The target.
pub static SPEC: TargetSpec = TargetSpec {
    id: "ssh",
    aliases: &["compose", "docker-compose"],
    name: "SSH + Docker Compose",
    needs: "a Dockerfile (existing or generated), the service's port and a health path",
    strategies: &[Strategy::Bluegreen],
    credentials: &[
        CredentialField {
            name: "SSH_HOST",
            secret: false,
            required: true,
            description: "the host's name or address",
            wire: Wire::Plain,
            check: host,
        },
        CredentialField {
            name: "SSH_USER",
            secret: false,
            required: true,
            description: "the user that runs docker on the host",
            wire: Wire::Plain,
            check: user,
        },
        CredentialField {
            name: "SSH_PORT",
            secret: false,
            required: false,
            description: "the SSH port (default 22)",
            wire: Wire::Plain,
            check: port,
        },
        CredentialField {
            name: "SSH_PRIVATE_KEY",
            secret: true,
            required: true,
            description: "a deploy key without passphrase, authorised on the host",
            wire: Wire::Base64,
            check: private_key,
        },
        CredentialField {
            name: "SSH_KNOWN_HOSTS",
            secret: false,
            required: true,
            description: "the host's public key lines (`ssh-keyscan -p PORT HOST`)",
            wire: Wire::Plain,
            check: known_hosts,
        },
    ],
    oidc: false,
};

/// The scripts and compose files.
pub fn config_files(_ctx: &DeployContext) -> Vec<GeneratedFile> {
    [
        ("ssh-deploy.sh", SSH_DEPLOY_SH),
        ("remote-deploy.sh", REMOTE_DEPLOY_SH),
        ("compose.yml", COMPOSE_YML),
        ("proxy.compose.yml", PROXY_COMPOSE_YML),
    ]
    .into_iter()
    .map(|(name, content)| GeneratedFile {
        path: format!("{DIR}/{name}"),
        content: content.to_owned(),
    })
    .collect()
}

/// Runs `ssh-deploy.sh` with the published image.
pub fn deploy_job(ctx: &DeployContext, env: Environment) -> DeployJob {
    // Staging and production are two hosts (or two users) in practice; the same host
    // works too, because each environment is its own app directory and port pair.
    let (app, public_port) = match env {
        Environment::Staging => (format!("{}-staging", ctx.app), "8080"),
        Environment::Production => (ctx.app.clone(), "80"),
    };
    DeployJob {
        target: DeployTarget::Ssh,
        environment: env,
        url: None,
        oidc: false,
        audience: None,
        image: "debian:bookworm-slim",
        credentials: vec![
            "SSH_HOST",
            "SSH_USER",
            "SSH_PORT",
            "SSH_PRIVATE_KEY",
            "SSH_KNOWN_HOSTS",
        ],
        env: vec![
            ("APP".into(), app),
            ("APP_PORT".into(), ctx.port.to_string()),
            ("PUBLIC_PORT".into(), public_port.into()),
            (
                "HEALTH_PATH".into(),
                ctx.health_path.clone().unwrap_or_else(|| "/".into()),
            ),
        ],
        commands: vec![
            "command -v ssh >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; }".into(),
            "RELEASE=\"$IMAGE_TAG\" sh deploy/pipewright/ssh-deploy.sh".into(),
        ],
        needs_published_image: true,
        needs_docker: false,
        gate: env.gate(),
    }
}

/// What a person does once on the host.
pub fn manual_setup(ctx: &DeployContext) -> Vec<String> {
    vec![
        "Install Docker with the Compose plugin and curl on the host; create a deploy user in \
         the `docker` group."
            .into(),
        "Make a deploy key without passphrase (`ssh-keygen -t ed25519 -N '' -f deploy_key`), \
         add deploy_key.pub to the user's authorized_keys, and store the private key with \
         `pipewright credentials set --target ssh --name SSH_PRIVATE_KEY --from-file deploy_key`."
            .into(),
        "Store SSH_HOST, SSH_USER, SSH_PORT and SSH_KNOWN_HOSTS (`ssh-keyscan -p PORT HOST`) the \
         same way."
            .into(),
        format!(
            "If the image is private, log the host in to the registry once (`docker login`). \
             `{}` serves on port 80 and `{}-staging` on 8080; health checks probe {}.",
            ctx.app,
            ctx.app,
            ctx.health_path.as_deref().unwrap_or("/")
        ),
    ]
}
