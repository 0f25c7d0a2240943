//! The `#[plugin]` attribute behind `veneer_sdk::plugin`. It reads which hooks an
//! `impl Plugin for T` block defines, so the host learns them from `describe` and
//! never calls a hook the plugin left at its default. Use it through `veneer-sdk`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemImpl, parse_macro_input, spanned::Spanned};

/// Registers the plugin implemented by the annotated `impl Plugin for T` block.
///
/// See the `veneer_sdk` crate documentation for a complete example.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[veneer_sdk::plugin] takes no arguments")
            .to_compile_error()
            .into();
    }
    let block = parse_macro_input!(item as ItemImpl);
    match expand(&block) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(block: &ItemImpl) -> syn::Result<proc_macro2::TokenStream> {
    let Some((_, trait_path, _)) = &block.trait_ else {
        return Err(syn::Error::new(
            block.span(),
            "#[veneer_sdk::plugin] goes on an `impl Plugin for YourType` block",
        ));
    };
    let is_plugin_trait = trait_path
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "Plugin");
    if !is_plugin_trait {
        return Err(syn::Error::new(
            trait_path.span(),
            "#[veneer_sdk::plugin] goes on an `impl Plugin for YourType` block",
        ));
    }
    let self_ty = &block.self_ty;

    let mut hooks = Vec::new();
    for item in &block.items {
        if let ImplItem::Fn(function) = item {
            let hook = match function.sig.ident.to_string().as_str() {
                "categories" => quote!(::veneer_sdk::Hook::Categories),
                "size_charts" => quote!(::veneer_sdk::Hook::SizeCharts),
                "commission" => quote!(::veneer_sdk::Hook::Commission),
                "email" => quote!(::veneer_sdk::Hook::Email),
                _ => continue,
            };
            hooks.push(hook);
        }
    }

    Ok(quote! {
        #block

        #[cfg(target_arch = "wasm32")]
        ::veneer_sdk::__export_glue!(
            #self_ty,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            [#(#hooks),*]
        );
    })
}
