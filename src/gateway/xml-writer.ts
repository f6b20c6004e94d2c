/**
 * A tiny XML writer for S3 response documents: elements and text only, escaped the way S3 escapes.
 */

/** What handlers return as a body and the response writer sends with `Content-Type: application/xml`. */
export interface XmlDoc {
  readonly contentType: 'application/xml';
  readonly body: string;
}

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** S3 sends the declaration followed by a newline, then the document on one line. */
export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

export type XmlValue = string | number | bigint | boolean | Date;

// Markup characters, CR (a raw CR would be turned into LF by every parser's end-of-line handling,
// XML 1.0 section 2.11), and everything outside XML 1.0's Char production (section 2.2): C0 controls other
// than TAB/LF/CR, U+FFFE, U+FFFF and unpaired surrogates.
const NEEDS_ESCAPE =
  /[&<>"\r\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const MARKUP_ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

/**
 * Escapes text content. Characters XML 1.0 cannot carry become numeric references such as `&#x1;`, which is
 * what S3 itself sends for a key holding a control character (strict XML 1.0 parsers reject it, which is why
 * S3 offers `encoding-type=url`; see boto/botocore#3496 and basho/riak_cs#1255).
 */
export function escapeXmlText(text: string): string {
  return text.replace(NEEDS_ESCAPE, (char) => MARKUP_ENTITIES[char] ?? `&#x${char.charCodeAt(0).toString(16)};`);
}

// Java's URLEncoder leaves these alone; S3 also leaves '/' so prefixes stay readable.
const URL_SAFE_BYTE = /[A-Za-z0-9.\-*_/]/;

/**
 * `encoding-type=url` as S3 applies it: form encoding of the UTF-8 bytes, a space as '+', '/' kept.
 * Measured against S3: `a b` -> `a+b`, `a+b` -> `a%2Bb`, `100%` -> `100%25`, `test_file(3).png` ->
 * `test_file%283%29.png`. Clients decode with unquote_plus (botocore), so encoding more is always safe.
 */
export function s3UrlEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    if (byte < 0x80 && URL_SAFE_BYTE.test(char)) out += char;
    else if (char === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function formatValue(value: XmlValue): string {
  if (value instanceof Date) return value.toISOString(); // 2009-10-12T17:50:30.000Z, as S3 sends timestamps
  return escapeXmlText(String(value));
}

/** Builds one document. Every element opened must be closed before `finish`. */
export class XmlWriter {
  private readonly parts: string[] = [XML_DECLARATION];
  private readonly openElements: string[] = [];

  /** Opens an element; `xmlns` is given on a document's root. */
  start(name: string, xmlns?: string): this {
    this.parts.push(xmlns === undefined ? `<${name}>` : `<${name} xmlns="${escapeXmlText(xmlns)}">`);
    this.openElements.push(name);
    return this;
  }

  end(): this {
    const name = this.openElements.pop();
    if (name === undefined) throw new Error('XmlWriter.end() without an open element');
    this.parts.push(`</${name}>`);
    return this;
  }

  /**
   * `<name>value</name>`; an empty string gives `<name></name>`, as S3 writes an empty Prefix or Marker.
   * `xmlns` is for a root that holds only text, such as LocationConstraint.
   */
  element(name: string, value: XmlValue, xmlns?: string): this {
    const open = xmlns === undefined ? `<${name}>` : `<${name} xmlns="${escapeXmlText(xmlns)}">`;
    this.parts.push(`${open}${formatValue(value)}</${name}>`);
    return this;
  }

  /** Writes the element only when there is a value. */
  optionalElement(name: string, value: XmlValue | undefined | null): this {
    return value === undefined || value === null ? this : this.element(name, value);
  }

  /** `<name xmlns="..."/>`: a root with nothing in it, as S3 answers GetBucketVersioning on a new bucket. */
  emptyElement(name: string, xmlns?: string): this {
    this.parts.push(xmlns === undefined ? `<${name}/>` : `<${name} xmlns="${escapeXmlText(xmlns)}"/>`);
    return this;
  }

  finish(): XmlDoc {
    if (this.openElements.length > 0) throw new Error(`XmlWriter.finish() with <${this.openElements.join('><')}> open`);
    return { contentType: 'application/xml', body: this.parts.join('') };
  }
}
