// Ids the seed APIs look up (subscriptions, agreements, billing accounts, customers, orgs) arrive in
// paths and bodies as any text. No stored key holds a NUL (the native Key pattern refuses control
// characters), and PostgreSQL refuses NUL in text outright, so such an id is not looked up at all:
// it names nothing, and the API answers "not found" in its own shape instead of failing.
export const canNameKey = (id: string): boolean => !id.includes('\u0000');
