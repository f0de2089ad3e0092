//! `flex login` and `flex logout`: a session token kept per server URL, so people need not
//! paste tokens; pipelines pass `FLEX_TOKEN` instead.

use serde_json::json;

use super::Context;
use crate::cli::{
    Exit,
    api::CliError,
    args::LoginArgs,
    credentials::{self, StoredLogin},
    output::{self, text},
};

pub async fn login(ctx: &Context, args: &LoginArgs) -> Result<Exit, CliError> {
    let password = match std::env::var("FLEX_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => rpassword::prompt_password(format!("password for {}: ", args.user))
            .map_err(|err| CliError::Usage(format!("cannot read the password: {err}")))?,
    };
    let answer = ctx.api.login(&args.user, &password).await?;
    let token = text(&answer, "/access_token");
    if token.is_empty() {
        return Err(CliError::Server {
            status: 200,
            code: "INVALID_RESPONSE".into(),
            message: "the login answer carries no access_token".into(),
            ref_id: ctx.api.ref_id().to_owned(),
        });
    }
    let expires_on = text(&answer, "/expiresOn");
    let path = credentials::store(
        ctx.api.base(),
        StoredLogin {
            token,
            user: args.user.clone(),
            expires_on: expires_on.clone(),
        },
    )?;
    if ctx.out.is_json() {
        // Everything but the token, which stays in the file.
        output::print_json(&json!({
            "url": ctx.api.base(),
            "user": args.user,
            "expires_on": expires_on,
            "credentials_file": path,
        }));
    } else {
        println!(
            "logged in to {} as {} until {expires_on} UTC; token kept in {}",
            ctx.api.base(),
            args.user,
            path.display()
        );
    }
    Ok(Exit::Completed)
}

pub fn logout(ctx: &Context) -> Result<Exit, CliError> {
    let forgotten = credentials::forget(ctx.api.base())?;
    if ctx.out.is_json() {
        output::print_json(&json!({"url": ctx.api.base(), "logged_out": forgotten}));
    } else if forgotten {
        println!("logged out of {}", ctx.api.base());
    } else {
        println!("no login kept for {}", ctx.api.base());
    }
    Ok(Exit::Completed)
}
