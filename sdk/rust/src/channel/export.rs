//! [`export_channel!`](crate::export_channel) and the hidden macros it expands to (one a WIT interface). With
//! `#[macro_export]` they stand at the crate root (`airlock_channel::export_channel!`) whatever module defines
//! them; they live here, apart from the trait, because they are the component's export glue.

/// Export `$ty` (a type implementing [`Channel`](crate::Channel)) as the component's `airlock:channel/channel`
/// interface and world 0.2.0's `delivery` ([`Channel::on_send`](crate::Channel::on_send)); with this crate's feature
/// `edit` also `edits` ([`Channel::on_edit`](crate::Channel::on_edit)), with `react` also `reactions`
/// ([`Channel::on_react`](crate::Channel::on_react)). Use it once, in the channel crate's `lib.rs` (crate-type
/// `cdylib`). It expands to nothing on targets other than wasm32, so the crate's unit tests build
/// natively.
///
/// ```no_run
/// # use airlock_channel::*;
/// # struct MyChannel;
/// # impl Channel for MyChannel {
/// #     fn on_start(_: Config) -> Result<ChannelConfig> { Ok(ChannelConfig::new("x")) }
/// #     fn on_respond(_: &AgentResponse) -> Result<()> { Ok(()) }
/// # }
/// airlock_channel::export_channel!(MyChannel);
/// ```
#[macro_export]
macro_rules! export_channel {
    ($ty:ty) => {
        $crate::__export_channel_base!($ty);
    };
}

/// `channel`, `delivery` and, by the crate features, `edits` / `reactions` (used by [`export_channel!`]). Not public
/// API.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_channel_base {
    ($ty:ty) => {
        // Only inside a component: on the build machine (`cargo test` of a cdylib crate) the WIT export
        // names ("airlock:channel/channel@0.2.0#on-start") are not valid in a native linker's symbol list.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::wit as __wit;
            use $crate::__private::wit_delivery as __wit_delivery;
            struct __AirlockChannelExport;
            impl __wit::Guest for __AirlockChannelExport {
                fn on_start(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<__wit::ChannelConfig, ::std::string::String> {
                    $crate::__private::on_start::<$ty>(&config_json)
                }
                fn on_http_request(req: __wit::IncomingHttpRequest) -> __wit::OutgoingHttpResponse {
                    $crate::__private::on_http_request::<$ty>(req)
                }
                fn on_poll() {
                    $crate::__private::on_poll::<$ty>()
                }
                fn on_respond(response: __wit::AgentResponse) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_respond::<$ty>(response)
                }
                fn on_status(update: __wit::StatusUpdate) {
                    $crate::__private::on_status::<$ty>(update)
                }
                fn on_broadcast(
                    user_id: ::std::string::String,
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_broadcast::<$ty>(&user_id, response)
                }
                fn on_shutdown() {
                    $crate::__private::on_shutdown::<$ty>()
                }
            }
            impl __wit_delivery::Guest for __AirlockChannelExport {
                fn on_respond(
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<::core::option::Option<::std::string::String>, __wit_delivery::SendError>
                {
                    $crate::__private::on_send::<$ty>(response)
                }
                fn on_broadcast(
                    user_id: ::std::string::String,
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<::core::option::Option<::std::string::String>, __wit_delivery::SendError>
                {
                    $crate::__private::on_send_broadcast::<$ty>(&user_id, response)
                }
            }
            $crate::__impl_channel_edits!(__AirlockChannelExport, $ty);
            $crate::__impl_channel_reactions!(__AirlockChannelExport, $ty);
    $crate::bindings::__export_channel_world!(__AirlockChannelExport with_types_in $crate::bindings);
        };
        // Natively nothing is exported, but the type must still be a Channel (and counts as used).
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$ty as $crate::Channel>::on_start;
        };
    };
}

/// `edits` for the export type `$ex` (used by [`export_channel!`] when the crate feature `edit` is on). Not public
/// API.
#[cfg(feature = "edit")]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_edits {
    ($ex:ident, $ty:ty) => {
        impl $crate::__private::wit_edits::Guest for $ex {
            fn on_edit(
                edit: $crate::__private::wit_edits::MessageEdit,
            ) -> ::core::result::Result<(), $crate::__private::wit_delivery::SendError> {
                $crate::__private::on_edit::<$ty>(edit)
            }
        }
    };
}

/// Without the crate feature `edit`: nothing (the world has no `edits`). Not public API.
#[cfg(not(feature = "edit"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_edits {
    ($ex:ident, $ty:ty) => {};
}

/// `reactions` for the export type `$ex` (crate feature `react`). Not public API.
#[cfg(feature = "react")]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_reactions {
    ($ex:ident, $ty:ty) => {
        impl $crate::__private::wit_reactions::Guest for $ex {
            fn on_react(
                reaction: $crate::__private::wit_reactions::Reaction,
            ) -> ::core::result::Result<(), $crate::__private::wit_delivery::SendError> {
                $crate::__private::on_react::<$ty>(reaction)
            }
        }
    };
}

/// Without the crate feature `react`: nothing. Not public API.
#[cfg(not(feature = "react"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_reactions {
    ($ex:ident, $ty:ty) => {};
}
