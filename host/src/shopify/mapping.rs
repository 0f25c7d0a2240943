//! From a Shopify product type (free text the merchant typed) to one of the
//! tenant's effective categories.
//!
//! Both sides are normalised the same way: case, whitespace, `-` and `_`,
//! `&`/`and`, and simple English plurals (`Sneakers` ~ `sneaker`, `Dresses` ~
//! `dress`, `Accessories` ~ `accessory`). A type may
//! name a path (`Shoes > Boots`, `Watches / Dive`): its last segment must
//! match, and categories whose ancestors match the earlier segments win.
//! Among equal candidates the deepest category wins (the most specific), then
//! an exact match over a plural-insensitive one, then id over name over slug,
//! then the earlier category in the list.

use std::collections::HashMap;

use crate::base::Category;

/// (ancestor segments matched, depth, exact match, field rank: id 3, name 2,
/// slug 1); compared as a tuple, larger is better.
type Score = (usize, usize, bool, u8);

/// Ancestry deeper than this is treated as a cycle.
const MAX_DEPTH: usize = 64;

/// The id of the category `product_type` names, if any.
pub fn map_product_type(product_type: &str, categories: &[Category]) -> Option<String> {
    let segments: Vec<String> = product_type
        .split(['>', '/'])
        .map(normalise)
        .filter(|s| !s.is_empty())
        .collect();
    let (last, ancestors_wanted) = segments.split_last()?;
    let last_singular = singular(last);
    let by_id: HashMap<&str, &Category> = categories.iter().map(|c| (c.id.as_str(), c)).collect();

    // Only a strictly better score replaces the best: ties keep the earlier.
    let mut best: Option<(Score, &Category)> = None;
    for category in categories {
        let fields = [
            (&category.id, 3u8),
            (&category.name, 2),
            (&category.slug, 1),
        ];
        let Some((exact, rank)) = fields
            .iter()
            .filter_map(|(field, rank)| {
                let field = normalise(field);
                if field == *last {
                    Some((true, *rank))
                } else if singular(&field) == last_singular {
                    Some((false, *rank))
                } else {
                    None
                }
            })
            .max()
        else {
            continue;
        };
        let chain = ancestors(category, &by_id);
        let path_matches = path_score(ancestors_wanted, &chain);
        let score = (path_matches, chain.len(), exact, rank);
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, category));
        }
    }
    best.map(|(_, category)| category.id.clone())
}

/// The category's ancestors, nearest first.
fn ancestors<'a>(category: &Category, by_id: &HashMap<&str, &'a Category>) -> Vec<&'a Category> {
    let mut chain = Vec::new();
    let mut parent = category.parent.as_deref();
    while let Some(id) = parent {
        let Some(found) = by_id.get(id) else { break };
        if chain.len() >= MAX_DEPTH {
            break;
        }
        chain.push(*found);
        parent = found.parent.as_deref();
    }
    chain
}

/// How many of the wanted ancestor segments (outermost first) match the
/// category's ancestors in order.
fn path_score(wanted: &[String], chain: &[&Category]) -> usize {
    let outermost_first: Vec<&Category> = chain.iter().rev().copied().collect();
    let mut from = 0;
    let mut matched = 0;
    for segment in wanted {
        let segment = singular(segment);
        let hit = outermost_first[from..].iter().position(|c| {
            [&c.id, &c.name, &c.slug]
                .iter()
                .any(|f| singular(&normalise(f)) == segment)
        });
        if let Some(offset) = hit {
            matched += 1;
            from += offset + 1;
        }
    }
    matched
}

/// Lower case, `-`/`_` as spaces, `&` as `and`, whitespace collapsed.
fn normalise(text: &str) -> String {
    text.to_lowercase()
        .replace('&', " and ")
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The normalised text with each word made singular by the common English
/// rules; good enough for category names, not a stemmer.
fn singular(normalised: &str) -> String {
    normalised
        .split(' ')
        .map(singular_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn singular_word(word: &str) -> String {
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if ["sses", "xes", "zes", "ches", "shes"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        word[..word.len() - 2].to_owned()
    } else if word.len() > 1 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(id: &str, parent: Option<&str>, name: &str, slug: &str) -> Category {
        Category {
            id: id.into(),
            parent: parent.map(Into::into),
            name: name.into(),
            slug: slug.into(),
            position: 0,
            attributes: Vec::new(),
        }
    }

    /// A slice of the base tree, with the ambiguities that matter.
    fn tree() -> Vec<Category> {
        vec![
            category("apparel", None, "Apparel", "apparel"),
            category("apparel-women", Some("apparel"), "Women", "women"),
            category("women-dresses", Some("apparel-women"), "Dresses", "dresses"),
            category(
                "women-tops",
                Some("apparel-women"),
                "Tops & Blouses",
                "tops",
            ),
            category("apparel-men", Some("apparel"), "Men", "men"),
            category(
                "men-jackets",
                Some("apparel-men"),
                "Jackets & Coats",
                "jackets",
            ),
            category("shoes", None, "Shoes", "shoes"),
            category("sneakers", Some("shoes"), "Sneakers", "sneakers"),
            category("shoes-boots", Some("shoes"), "Boots", "boots"),
            category("accessories", None, "Accessories", "accessories"),
            category(
                "accessories-sunglasses",
                Some("accessories"),
                "Sunglasses",
                "sunglasses",
            ),
            category("watches", None, "Watches", "watches"),
            category(
                "watches-automatic",
                Some("watches"),
                "Automatic",
                "automatic",
            ),
            category(
                "watches-dress",
                Some("watches-automatic"),
                "Dress Watches",
                "dress",
            ),
            category(
                "watches-dive",
                Some("watches-automatic"),
                "Dive Watches",
                "dive",
            ),
            category("kids-shoes", Some("kids"), "Shoes", "shoes"),
            category("kids", None, "Kids", "kids"),
        ]
    }

    fn map(product_type: &str) -> Option<String> {
        map_product_type(product_type, &tree())
    }

    #[test]
    fn names_slugs_and_ids_match_loosely() {
        assert_eq!(map("Sneakers").as_deref(), Some("sneakers"));
        assert_eq!(map("sneaker").as_deref(), Some("sneakers"));
        assert_eq!(map("  SNEAKERS ").as_deref(), Some("sneakers"));
        assert_eq!(map("boot").as_deref(), Some("shoes-boots"));
        assert_eq!(map("Accessory").as_deref(), Some("accessories"));
        assert_eq!(map("sunglasses").as_deref(), Some("accessories-sunglasses"));
        assert_eq!(map("Tops and Blouses").as_deref(), Some("women-tops"));
        assert_eq!(map("tops-&-blouses").as_deref(), Some("women-tops"));
        assert_eq!(map("jacket & coat").as_deref(), Some("men-jackets"));
        assert_eq!(map("dive_watch").as_deref(), Some("watches-dive"));
        assert_eq!(map("Dress watches").as_deref(), Some("watches-dress"));
        assert_eq!(
            map("women-dresses").as_deref(),
            Some("women-dresses"),
            "by id"
        );
        assert_eq!(map("Watch").as_deref(), Some("watches"));
    }

    #[test]
    fn the_deepest_and_the_closest_path_win() {
        // `Shoes` is a root and a child of Kids: the deeper one.
        assert_eq!(map("Shoes").as_deref(), Some("kids-shoes"));
        // A path picks the branch.
        assert_eq!(map("Shoes > Boots").as_deref(), Some("shoes-boots"));
        assert_eq!(map("Kids / Shoes").as_deref(), Some("kids-shoes"));
        assert_eq!(
            map("Apparel & Accessories > Shoes > Sneakers").as_deref(),
            Some("sneakers")
        );
        // `Dress`: the slug of Dress Watches (deeper) and, as a plural, Dresses.
        assert_eq!(map("Dress").as_deref(), Some("watches-dress"));
        assert_eq!(map("Women > Dress").as_deref(), Some("women-dresses"));
        assert_eq!(map("Dresses").as_deref(), Some("women-dresses"));
    }

    #[test]
    fn nothing_is_better_than_a_guess() {
        for unknown in [
            "",
            "   ",
            " > / ",
            "Gift Card",
            "Shoe Polish",
            "Sneakers Deluxe",
            "s",
        ] {
            assert_eq!(map(unknown), None, "{unknown}");
        }
        assert_eq!(map_product_type("Sneakers", &[]), None);
    }

    #[test]
    fn a_cyclic_tree_does_not_hang() {
        let cyclic = vec![
            category("a", Some("b"), "Alpha", "alpha"),
            category("b", Some("a"), "Beta", "beta"),
        ];
        assert_eq!(map_product_type("alpha", &cyclic).as_deref(), Some("a"));
    }

    #[test]
    fn plurals() {
        for (plural, one) in [
            ("sneakers", "sneaker"),
            ("dresses", "dress"),
            ("watches", "watch"),
            ("boxes", "box"),
            ("accessories", "accessory"),
            ("glasses", "glass"),
            ("shoes", "shoe"),
            ("dress", "dress"),
            ("ties", "tie"),
            ("dress watches", "dress watch"),
        ] {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }
}
