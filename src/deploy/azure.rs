//! Azure Container Apps, through OIDC: `az login --federated-token` with the forge's
//! short-lived token (a federated credential on an app registration; no client secret),
//! then `az containerapp up --source`, which builds the Dockerfile in Azure Container
//! Registry and creates a new revision; Container Apps shifts traffic when it is ready.

use super::{
    env_app, identifier, uuid_like, CredentialField, DeployContext, DeployJob, DeployTarget,
    Environment, Strategy, TargetSpec, Wire,
};
use crate::generate::GeneratedFile;

/// Region when none is chosen.
pub const DEFAULT_REGION: &str = "westeurope";

/// The target.
pub static SPEC: TargetSpec = TargetSpec {
    id: "azure",
    aliases: &["container-apps", "aca", "azure-container-apps"],
    name: "Azure Container Apps",
    needs: "a Dockerfile (existing or generated) and the port the service listens on",
    strategies: &[Strategy::Rolling],
    credentials: &[
        CredentialField {
            name: "AZURE_CLIENT_ID",
            secret: false,
            required: true,
            description: "the app registration (or managed identity) with the federated credential",
            wire: Wire::Plain,
            check: uuid_like,
        },
        CredentialField {
            name: "AZURE_TENANT_ID",
            secret: false,
            required: true,
            description: "the Microsoft Entra tenant id",
            wire: Wire::Plain,
            check: uuid_like,
        },
        CredentialField {
            name: "AZURE_SUBSCRIPTION_ID",
            secret: false,
            required: true,
            description: "the subscription id",
            wire: Wire::Plain,
            check: uuid_like,
        },
        CredentialField {
            name: "AZURE_RESOURCE_GROUP",
            secret: false,
            required: true,
            description: "the resource group of the container apps",
            wire: Wire::Plain,
            check: identifier,
        },
    ],
    oidc: true,
};

/// Container Apps needs no file in the repository.
pub fn config_files(_ctx: &DeployContext) -> Vec<GeneratedFile> {
    Vec::new()
}

/// Federated login, then `az containerapp up`.
pub fn deploy_job(ctx: &DeployContext, env: Environment) -> DeployJob {
    DeployJob {
        target: DeployTarget::Azure,
        environment: env,
        url: None,
        oidc: true,
        audience: Some("api://AzureADTokenExchange"),
        image: "mcr.microsoft.com/azure-cli:latest",
        credentials: vec![
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
            "AZURE_RESOURCE_GROUP",
        ],
        env: vec![
            ("CONTAINER_APP".into(), env_app(ctx, env)),
            ("AZURE_LOCATION".into(), ctx.region.clone()),
            ("CONTEXT_DIR".into(), ctx.context_dir.clone()),
            ("PORT".into(), ctx.port.to_string()),
        ],
        commands: vec![
            "az login --service-principal --username \"$AZURE_CLIENT_ID\" --tenant \"$AZURE_TENANT_ID\" --federated-token \"$OIDC_TOKEN\" --output none".into(),
            "az account set --subscription \"$AZURE_SUBSCRIPTION_ID\"".into(),
            "az containerapp up --name \"$CONTAINER_APP\" --resource-group \"$AZURE_RESOURCE_GROUP\" --location \"$AZURE_LOCATION\" --source \"$CONTEXT_DIR\" --ingress external --target-port \"$PORT\" --output none".into(),
        ],
        needs_published_image: false,
        needs_docker: false,
        gate: env.gate(),
    }
}

/// What a person does once on Azure.
pub fn manual_setup(ctx: &DeployContext) -> Vec<String> {
    vec![
        "Create an app registration (or user-assigned managed identity) and add a federated \
         credential for the forge's issuer and this repository's environments."
            .into(),
        format!(
            "Give it the Contributor role on the resource group; the apps `{}` and `{}` and \
             their registry are created on the first deploy.",
            ctx.app,
            env_app(ctx, Environment::Staging)
        ),
        "Store AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP \
         with `pipewright credentials set`."
            .into(),
    ]
}
