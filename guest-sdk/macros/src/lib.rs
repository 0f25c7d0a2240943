//! The attributes behind `veneer_sdk::plugin` and `veneer_sdk::settings`.
//! `plugin` reads which hooks an `impl Plugin for T` block defines, so the host
//! learns them from `describe` and never calls a hook the plugin left at its
//! default; `settings` derives serde and schemars through `veneer_sdk`, so a
//! plugin crate needs neither as a dependency. Use them through `veneer-sdk`.

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::{ImplItem, ItemImpl, LitStr, MetaNameValue, Token, parse_macro_input, spanned::Spanned};

/// The hooks of the `Plugin` trait: (method name, WIT name).
const HOOKS: &[(&str, &str)] = &[
    ("categories", "categories"),
    ("size_charts", "size-charts"),
    ("commission", "commission"),
    ("email", "email"),
    ("product_category", "product-category"),
];

/// Registers the plugin implemented by the annotated `impl Plugin for T` block.
///
/// See the `veneer_sdk` crate documentation for a complete example.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse(attr) {
        Ok(args) => args,
        Err(err) => return err.to_compile_error().into(),
    };
    let block = parse_macro_input!(item as ItemImpl);
    match expand_plugin(&args, &block) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// What `describe` says beside the hooks, from the attribute's arguments.
#[derive(Default)]
struct Overrides {
    name: Option<LitStr>,
    version: Option<LitStr>,
    description: Option<LitStr>,
}

fn overrides(args: &Punctuated<MetaNameValue, Token![,]>) -> syn::Result<Overrides> {
    let mut out = Overrides::default();
    for arg in args {
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(value),
            ..
        }) = &arg.value
        else {
            return Err(syn::Error::new(
                arg.value.span(),
                "expected a string literal",
            ));
        };
        let slot = match arg.path.get_ident().map(ToString::to_string).as_deref() {
            Some("name") => &mut out.name,
            Some("version") => &mut out.version,
            Some("description") => &mut out.description,
            _ => {
                return Err(syn::Error::new(
                    arg.path.span(),
                    "#[veneer_sdk::plugin] takes name = \"..\", version = \"..\" and description = \"..\"",
                ));
            }
        };
        *slot = Some(value.clone());
    }
    Ok(out)
}

fn expand_plugin(
    args: &Punctuated<MetaNameValue, Token![,]>,
    block: &ItemImpl,
) -> syn::Result<proc_macro2::TokenStream> {
    let wrong_place = || {
        syn::Error::new(
            block.span(),
            "#[veneer_sdk::plugin] goes on an `impl Plugin for YourType` block",
        )
    };
    let Some((_, trait_path, _)) = &block.trait_ else {
        return Err(wrong_place());
    };
    let names_plugin = trait_path
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "Plugin");
    if !names_plugin {
        return Err(wrong_place());
    }
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new(
            block.generics.span(),
            "#[veneer_sdk::plugin] registers one concrete type: give it no generic parameters",
        ));
    }
    let self_ty = &block.self_ty;
    let overrides = overrides(args)?;

    let mut hooks = Vec::new();
    for item in &block.items {
        match item {
            ImplItem::Fn(function) => {
                let name = function.sig.ident.to_string();
                if let Some((_, wit)) = HOOKS.iter().find(|(method, _)| *method == name) {
                    hooks.push(*wit);
                }
            }
            // The hooks are read from the block: methods a macro would write
            // could not be seen, and the plugin would not report them.
            ImplItem::Macro(call) => {
                return Err(syn::Error::new(
                    call.span(),
                    "#[veneer_sdk::plugin] reads the hooks from this block and cannot see into a macro call: write the methods out",
                ));
            }
            _ => {}
        }
    }

    let name = match &overrides.name {
        Some(name) => quote!(#name),
        None => quote!(::core::env!("CARGO_PKG_NAME")),
    };
    let version = match &overrides.version {
        Some(version) => quote!(#version),
        None => quote!(::core::env!("CARGO_PKG_VERSION")),
    };
    let description = match &overrides.description {
        Some(description) => quote!(#description),
        // The package's description, read while expanding: a plugin without
        // one is a compile error that says where to write it.
        None => match std::env::var("CARGO_PKG_DESCRIPTION") {
            Ok(text) if !text.trim().is_empty() => quote!(::core::env!("CARGO_PKG_DESCRIPTION")),
            _ => {
                return Err(syn::Error::new(
                    block.self_ty.span(),
                    "the plugin needs a description for the people who install it: set `description` in its Cargo.toml [package], or write #[veneer_sdk::plugin(description = \"...\")]",
                ));
            }
        },
    };

    Ok(quote! {
        #block

        impl ::veneer_sdk::Described for #self_ty {
            const NAME: &'static str = #name;
            const VERSION: &'static str = #version;
            const DESCRIPTION: &'static str = #description;
            const HOOKS: &'static [&'static str] = &[#(#hooks),*];
        }

        #[cfg(target_arch = "wasm32")]
        ::veneer_sdk::__export_glue!(#self_ty);
    })
}

/// Derives `Deserialize` and `JsonSchema` for a settings type through
/// `veneer_sdk`'s re-exports. Put it above the type's other attributes.
#[proc_macro_attribute]
pub fn settings(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[veneer_sdk::settings] takes no arguments")
            .to_compile_error()
            .into();
    }
    let item = parse_macro_input!(item as syn::DeriveInput);
    quote! {
        #[derive(::veneer_sdk::serde::Deserialize, ::veneer_sdk::schemars::JsonSchema)]
        #[serde(crate = "::veneer_sdk::serde")]
        #[schemars(crate = "::veneer_sdk::schemars")]
        #item
    }
    .into()
}
